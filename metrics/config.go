package metrics

import (
	"fmt"
	"time"
)

// Config configures a Registry. The zero Config is valid: every field documents its zero value.
type Config struct {
	// Tag is the value of the `proxy` label on every series. "" means "unknown"; main passes the
	// bound stratum address (see Registry.SetTag for setting it after New).
	Tag string

	// WorkerLabel chooses the value of the `worker` label: "addr" (the miner's ip:port, as the
	// original) or "name" (the miner's rig name, falling back to ip:port when it has none).
	// "" means "addr".
	WorkerLabel string

	// Window is the hashrate window W. 0 means 5 minutes.
	Window time.Duration

	// Step is how often hashrates are recomputed, and the width of one slot of a worker's
	// hashrate ring. 0 means 1 minute. Window must be a multiple of Step.
	Step time.Duration

	// MaxLabelLen caps, in bytes, label values that miners control (rig names, drop reasons
	// the proxy did not declare). 0 means 64.
	MaxLabelLen int

	// Now returns the current time; tests set it. nil means time.Now.
	Now func() time.Time
}

// Worker label modes, the values of Config.WorkerLabel.
const (
	WorkerLabelAddr = "addr"
	WorkerLabelName = "name"
)

const (
	defaultWindow      = 5 * time.Minute // PROTOCOL.md section 5
	defaultStep        = time.Minute     // PROTOCOL.md section 5
	defaultMaxLabelLen = 64              // long enough for rig names seen in the wild, short enough to bound /metrics

	// maxSlots bounds a worker's ring: Window/Step slots of 8 bytes each, per worker.
	maxSlots = 1440
)

// Validate reports whether c can be passed to New. New panics on a Config that Validate rejects,
// so main should call Validate on flag-derived values first.
func (c Config) Validate() error {
	switch c.WorkerLabel {
	case "", WorkerLabelAddr, WorkerLabelName:
	default:
		return fmt.Errorf("metrics: WorkerLabel %q is neither %q nor %q", c.WorkerLabel, WorkerLabelAddr, WorkerLabelName)
	}
	if c.Window < 0 || c.Step < 0 || c.MaxLabelLen < 0 {
		return fmt.Errorf("metrics: Window (%s), Step (%s) and MaxLabelLen (%d) must not be negative", c.Window, c.Step, c.MaxLabelLen)
	}
	w, s := c.window(), c.step()
	if w < s || w%s != 0 {
		return fmt.Errorf("metrics: Window %s must be a positive multiple of Step %s", w, s)
	}
	if w/s > maxSlots {
		return fmt.Errorf("metrics: Window/Step = %d slots exceeds %d", w/s, maxSlots)
	}
	return nil
}

func (c Config) window() time.Duration {
	if c.Window == 0 {
		return defaultWindow
	}
	return c.Window
}

func (c Config) step() time.Duration {
	if c.Step == 0 {
		return defaultStep
	}
	return c.Step
}

func (c Config) maxLabelLen() int {
	if c.MaxLabelLen == 0 {
		return defaultMaxLabelLen
	}
	return c.MaxLabelLen
}

func (c Config) byName() bool { return c.WorkerLabel == WorkerLabelName }

func (c Config) nowFunc() func() time.Time {
	if c.Now == nil {
		return time.Now
	}
	return c.Now
}
