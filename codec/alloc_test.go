package codec

import (
	"testing"
)

// Real hot-path lines, from the captured sessions.
type hotLines struct {
	submit, notify, result []byte
}

func loadHotLines(tb testing.TB) hotLines {
	tb.Helper()
	return hotLines{
		submit: realLine(tb, `"method": "mining.submit"`),
		notify: realLine(tb, `"method":"mining.notify"`),
		result: realLine(tb, `{"result":true,"error":null,"id":4}`),
	}
}

// TestZeroAllocs fails if a hot-path operation allocates: every frame of
// every connection goes through these on the event loop.
func TestZeroAllocs(t *testing.T) {
	h := loadHotLines(t)
	var m Message
	if err := Decode(h.notify, &m); err != nil {
		t.Fatal(err)
	}
	notifyParams := m.Params
	params := make([][]byte, 0, 16)
	out := make([]byte, 0, 4096)
	framed := append(append(append([]byte(nil), h.submit...), "\r\n\n"...), h.notify[:40]...)
	escaped := []byte(`{"id":1,"method":"mining.\u0073ubmit","params":["w\u00e9"]}`)
	unq, quoted := make([]byte, 0, 64), []byte(`"w\u00e9"`)

	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"Decode submit", func() { _ = Decode(h.submit, &m) }},
		{"Decode notify", func() { _ = Decode(h.notify, &m) }},
		{"Decode result", func() { _ = Decode(h.result, &m) }},
		{"Decode escaped method (buffer grown)", func() { _ = Decode(escaped, &m) }},
		{"Decode invalid", func() { _ = Decode(h.notify[:100], &m) }},
		{"NextLine", func() { _, _, _ = NextLine(framed, 0) }},
		{"SplitArray notify params", func() { params, _ = SplitArray(notifyParams, params[:0]) }},
		{"Unquote escaped", func() { unq, _ = Unquote(quoted, unq) }},
		{"ParseFloat", func() { _, _ = ParseFloat([]byte(`0.01`)) }},
		{"ParseFloat quoted", func() { _, _ = ParseFloat([]byte(`"65536"`)) }},
		{"ParseInt", func() { _, _ = ParseInt([]byte(`-32700`)) }},
		{"ParseUint32Hex", func() { _, _ = ParseUint32Hex([]byte(`"1fffe000"`)) }},
		{"ParseError", func() { _, _, _, _ = ParseError([]byte(`[23,"Low difficulty share",null]`)) }},
		{"ObjectField", func() { _, _ = ObjectField([]byte(`{"code":-1,"message":"x"}`), "message") }},
		{"AppendResult", func() { out = AppendResult(out[:0], []byte("4"), []byte("true")) }},
		{"AppendError", func() { out = AppendError(out[:0], []byte("4"), CodeJobNotFound, "Job not found") }},
		{"AppendRequest", func() { out = AppendRequest(out[:0], []byte("4"), MethodSubmit, params[0]) }},
		{"AppendNotification notify", func() { out = AppendNotification(out[:0], MethodNotify, notifyParams) }},
		{"AppendFloat", func() { out = AppendFloat(out[:0], 0.01) }},
		{"AppendHexString", func() { out = AppendHexString(out[:0], h.submit[:8]) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn() // grow buffers once
			if n := testing.AllocsPerRun(100, tc.fn); n != 0 {
				t.Errorf("%s: %v allocs per run, want 0", tc.name, n)
			}
		})
	}
	if err := Decode(h.notify, &m); err != nil || len(params) != 9 {
		t.Fatalf("sanity: %v, %d params", err, len(params))
	}
}

func BenchmarkDecodeSubmit(b *testing.B) {
	benchDecode(b, loadHotLines(b).submit)
}

func BenchmarkDecodeNotify(b *testing.B) {
	benchDecode(b, loadHotLines(b).notify)
}

func BenchmarkDecodeResult(b *testing.B) {
	benchDecode(b, loadHotLines(b).result)
}

func benchDecode(b *testing.B, line []byte) {
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := Decode(line, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitArrayNotify(b *testing.B) {
	var m Message
	if err := Decode(loadHotLines(b).notify, &m); err != nil {
		b.Fatal(err)
	}
	params := make([][]byte, 0, 16)
	b.ReportAllocs()
	b.SetBytes(int64(len(m.Params)))
	for b.Loop() {
		var err error
		if params, err = SplitArray(m.Params, params[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResult(b *testing.B) {
	out := make([]byte, 0, 256)
	id, result := []byte("4"), []byte("true")
	b.ReportAllocs()
	for b.Loop() {
		out = AppendResult(out[:0], id, result)
	}
}

func BenchmarkNextLine(b *testing.B) {
	// A read of several lines, as it arrives from a pool.
	h := loadHotLines(b)
	var buf []byte
	for _, l := range [][]byte{h.result, h.notify, h.submit} {
		buf = append(append(buf, l...), '\n')
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		rest := buf
		for {
			line, n, err := NextLine(rest, 0)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
			if line == nil {
				break
			}
		}
	}
}

// BenchmarkDecodeNotifyStdlib is encoding/json decoding the same notify
// into a generic struct, for scale.
func BenchmarkDecodeNotifyStdlib(b *testing.B) {
	line := loadHotLines(b).notify
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		var v struct {
			ID     any    `json:"id"`
			Method string `json:"method"`
			Params []any  `json:"params"`
		}
		if err := jsonUnmarshal(line, &v); err != nil {
			b.Fatal(err)
		}
	}
}
