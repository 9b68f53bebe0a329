package store

import (
	"fmt"
	"io"
)

// redacted is what every formatting of a Secret prints.
const redacted = "***"

// Secret holds a pool password. Every way of formatting it — fmt verbs
// (%v %s %q %x %d %+v %#v, also as a struct field), String, GoString,
// encoding/json, encoding.TextMarshaler and therefore zerolog's Interface
// and Any — prints "***", so a password cannot reach logs, metrics or API
// listings by accident. Reveal returns the real value; call it only where
// the password goes to the pool.
//
// A Secret decodes from JSON like a plain string, so request bodies can
// carry one. Do not use it as a map key: encoding/json writes keys of
// string kind verbatim.
type Secret string

// Reveal returns the password itself.
func (s Secret) Reveal() string { return string(s) }

// String returns "***".
func (s Secret) String() string { return redacted }

// GoString returns "***", for %#v.
func (s Secret) GoString() string { return redacted }

// Format prints "***" for every verb. Without it, a verb that does not
// suit a string (%d) would make fmt print the raw value inside its
// %!d(...) complaint.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		_, _ = io.WriteString(f, `"`+redacted+`"`)
		return
	}
	_, _ = io.WriteString(f, redacted)
}

// MarshalJSON returns the JSON string "***".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "***", for encoders that prefer
// encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
