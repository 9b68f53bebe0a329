package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	f := func(c Config, wantErr string) {
		t.Helper()
		err := c.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("%+v: error %v, want %q", c, err, wantErr)
		}
	}
	f(Config{}, "")
	f(Config{WorkerLabel: "addr"}, "")
	f(Config{WorkerLabel: "name"}, "")
	f(Config{WorkerLabel: "rig"}, `WorkerLabel "rig"`)
	f(Config{Window: time.Minute, Step: time.Second}, "")
	f(Config{Window: 5 * time.Second}, "multiple of Step") // default Step 1m > Window
	f(Config{Window: 90 * time.Second, Step: time.Minute}, "multiple of Step")
	f(Config{Step: -time.Second}, "negative")
	f(Config{MaxLabelLen: -1}, "negative")
	f(Config{Window: 24 * time.Hour, Step: time.Second}, "slots")

	defer func() {
		if recover() == nil {
			t.Error("New accepted an invalid Config")
		}
	}()
	New(Config{WorkerLabel: "rig"})
}

func TestConfigDefaults(t *testing.T) {
	r := New(Config{})
	if r.window != 5*time.Minute || r.step != time.Minute || r.slots != 5 || r.maxLabel != 64 {
		t.Errorf("defaults: window %s step %s slots %d maxLabel %d", r.window, r.step, r.slots, r.maxLabel)
	}
	if got := *r.tag.Load(); got != "unknown" {
		t.Errorf("tag %q", got)
	}
	if d := time.Since(r.now()); d < 0 || d > time.Minute {
		t.Errorf("now is not time.Now")
	}
}
