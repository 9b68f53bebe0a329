package flood

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseSources(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := ParseSources(in)
		if err != nil {
			t.Errorf("ParseSources(%q): %v", in, err)
			return
		}
		if s := strings.Trim(fmt.Sprint(got), "[]"); s != want {
			t.Errorf("ParseSources(%q) = %q, want %q", in, s, want)
		}
	}
	f("", "")
	f("  ", "")
	f("127.0.0.2", "127.0.0.2")
	f("127.0.0.2-127.0.0.9", "127.0.0.2 127.0.0.3 127.0.0.4 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8 127.0.0.9")
	f("127.0.0.2-127.0.0.2", "127.0.0.2")
	f("127.0.0.2,127.0.0.5", "127.0.0.2 127.0.0.5")
	f(" 127.0.0.2 - 127.0.0.3 , 127.0.0.9 ", "127.0.0.2 127.0.0.3 127.0.0.9")
	f("127.0.0.3,127.0.0.2-127.0.0.4", "127.0.0.3 127.0.0.2 127.0.0.4") // order kept, duplicates dropped
	f("127.0.0.255-127.0.1.1", "127.0.0.255 127.0.1.0 127.0.1.1")       // carries across octets
	f("::1", "::1")
	f("::1-::3", "::1 ::2 ::3")
	f("::ffff:127.0.0.2", "127.0.0.2") // IPv4-mapped is unmapped

	bad := func(in string, want error) {
		t.Helper()
		_, err := ParseSources(in)
		if err == nil {
			t.Errorf("ParseSources(%q): no error", in)
			return
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("ParseSources(%q) = %v, want %v", in, err, want)
		}
	}
	bad("127.0.0.300", nil)
	bad("localhost", nil)
	bad("127.0.0.2,", nil)
	bad(",127.0.0.2", nil)
	bad("127.0.0.9-127.0.0.2", nil)
	bad("127.0.0.2-::1", nil)
	bad("127.0.0.2-", nil)
	bad("fe80::1%lo", nil)
	bad("127.0.0.0-127.0.255.255", ErrSourcesTooMany)
	bad("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ErrSourcesTooMany)
}
