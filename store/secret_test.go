package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

const testPassword = "hunter2-pool-password"

func TestSecretFormatting(t *testing.T) {
	s := Secret(testPassword)
	acct := Account{Pool: "h:1", User: "u", Password: s}
	user := User{Name: "0123456789abcdef", Account: acct, Backups: []Account{acct}}

	f := func(got string) {
		t.Helper()
		if strings.Contains(got, testPassword) {
			t.Errorf("password leaked: %s", got)
		}
		if !strings.Contains(got, redacted) {
			t.Errorf("no %q in %s", redacted, got)
		}
	}
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%-8v"} {
		f(fmt.Sprintf(verb, s))
		f(fmt.Sprintf(verb, acct))
		f(fmt.Sprintf(verb, &user))
	}
	f(fmt.Sprint(s, acct, user))
	f(fmt.Sprintln(s))
	f(s.String())
	f(s.GoString())
	if got := fmt.Sprintf("%q", s); got != `"***"` {
		t.Errorf("%%q = %s", got)
	}

	for _, v := range []any{s, acct, user, []User{user}, map[string]Account{"a": acct}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		f(string(b))
	}

	var buf bytes.Buffer
	log := zerolog.New(&buf)
	log.Info().Interface("acct", acct).Any("user", user).Stringer("pw", s).Msg("login")
	log.Info().Interface("pw", s).Msgf("%v %s", s, acct)
	log.Info().Fields(map[string]any{"pw": s, "acct": acct}).Msg("fields")
	log.Info().Dict("ctx", zerolog.Dict().Interface("pw", s).Str("user", acct.User)).Msg("dict")
	var cbuf bytes.Buffer
	clog := zerolog.New(zerolog.ConsoleWriter{Out: &cbuf, NoColor: true})
	clog.Info().Any("pw", s).Interface("acct", acct).Msg("console")
	for _, out := range []string{buf.String(), cbuf.String()} {
		f(out)
	}

	// Decoding still takes a plain string, and Reveal gives it back.
	var a Account
	if err := json.Unmarshal([]byte(`{"pool":"h:1","user":"u","password":"`+testPassword+`"}`), &a); err != nil {
		t.Fatal(err)
	}
	if a.Password.Reveal() != testPassword {
		t.Errorf("decoded %q", a.Password.Reveal())
	}
}
