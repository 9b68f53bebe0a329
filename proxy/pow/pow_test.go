package pow

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"testing"
)

// reversed decodes a hash displayed the usual way (byte-reversed hex).
func reversed(t testing.TB, s string) (h [32]byte) {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("bad hash %q", s)
	}
	for i := range h {
		h[i] = b[31-i]
	}
	return h
}

// TestBlock125552 is the header vector of PROTOCOL.md: Bitcoin block 125552.
func TestBlock125552(t *testing.T) {
	job := &Job{
		PrevHash: reversed(t, "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"),
		Version:  1,
		NBits:    0x1a44b9f2,
	}
	root := reversed(t, "2b12fcf1b09288fcaff797d71e950e71ae42b91e8bdb2304758dfcffc2b620e3")
	h := Header(job, &root, 1305998791, 2504433986, job.Version)
	got := HeaderHash(&h)
	want := reversed(t, "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d")
	if got != want {
		t.Fatalf("hash %x, want %x", got, want)
	}
	// The block meets its own nbits: difficulty 0xFFFF*2^208 / (0x44b9f2 * 2^(8*(0x1a-3))) = 244112.49.
	if d := Difficulty(got); d < 244112.49 {
		t.Fatalf("block difficulty %g, want at least 244112.49", d)
	}
	if !MeetsTarget(got, Target(244112.49)) || MeetsTarget(got, Target(Difficulty(got)*1.000001)) {
		t.Fatal("MeetsTarget disagrees with Difficulty")
	}

	// The same header through the notify path: prevhash as a pool sends it
	// (words swapped), fields as big-endian hex.
	prevNotify := PrevHashToNotify(&job.PrevHash)
	// In notify form the displayed hash's 8-digit words come in reverse order.
	const display = "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"
	var words string
	for i := len(display); i > 0; i -= 8 {
		words += display[i-8 : i]
	}
	if got := hex.EncodeToString(prevNotify[:]); got != words {
		t.Fatalf("notify prevhash %s, want %s", got, words)
	}
	if PrevHashFromNotify(&prevNotify) != job.PrevHash {
		t.Fatal("prevhash word swap is not its own inverse")
	}
}

// refHash is a deliberately naive share hash (concatenation, binary.Write,
// big.Int) to cross-check Checker.Hash.
func refHash(job *Job, en1, en2 []byte, ntime, nonce, version uint32) *big.Int {
	d := func(b []byte) []byte { x := sha256.Sum256(b); y := sha256.Sum256(x[:]); return y[:] }
	var cb []byte
	cb = append(append(append(append(cb, job.Coinb1...), en1...), en2...), job.Coinb2...)
	root := d(cb)
	for _, br := range job.Branches {
		root = d(append(append([]byte(nil), root...), br[:]...))
	}
	var hdr bytes.Buffer
	binary.Write(&hdr, binary.LittleEndian, version)
	hdr.Write(job.PrevHash[:])
	hdr.Write(root)
	binary.Write(&hdr, binary.LittleEndian, []uint32{ntime, job.NBits, nonce})
	h := d(hdr.Bytes())
	be := make([]byte, 32)
	for i := range h {
		be[i] = h[31-i]
	}
	return new(big.Int).SetBytes(be)
}

func leInt(h [32]byte) *big.Int {
	be := make([]byte, 32)
	for i := range h {
		be[i] = h[31-i]
	}
	return new(big.Int).SetBytes(be)
}

// testJob is a constructed job with a realistic coinbase and 3 branches.
func testJob() *Job {
	j := &Job{
		ID:      "7f",
		Coinb1:  mustHex("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2003a0860104d5d3006b08"),
		Coinb2:  mustHex("0a2f706f6f6c73696d2fffffffff0100f2052a010000001976a914cf757c67706ad6275e5b29864fb227788423b8ab88ac00000000"),
		Version: 0x20000000,
		NBits:   0x207fffff,
		NTime:   0x6b00d546,
	}
	for i := 0; i < 3; i++ {
		j.Branches = append(j.Branches, sha256.Sum256([]byte{byte(i)}))
	}
	j.PrevHash = sha256.Sum256([]byte("prev"))
	return j
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestVersionRolling(t *testing.T) {
	job := testJob()
	en1, en2 := mustHex("0a0b0c0d"), mustHex("0000000000000001")
	const mask = 0x1fffe000
	const bits = 0x0aaa6000 // inside mask
	const diff = 1e-5       // about 43,000 hashes
	target := Target(diff)
	var c Checker
	nonce := uint32(0)
	for ; ; nonce++ {
		if MeetsTarget(c.Hash(job, en1, en2, job.NTime, nonce, bits, mask), target) {
			break
		}
	}
	h := c.Hash(job, en1, en2, job.NTime, nonce, bits, mask)
	rolled := RollVersion(job.Version, bits, mask)
	if rolled != 0x2aaa6000 {
		t.Fatalf("rolled version %08x, want 2aaa6000", rolled)
	}
	if ref := refHash(job, en1, en2, job.NTime, nonce, rolled); leInt(h).Cmp(ref) != 0 {
		t.Fatalf("Checker.Hash %x differs from the reference %x", leInt(h), ref)
	}
	// Bits outside the mask are masked out: the same header.
	if c.Hash(job, en1, en2, job.NTime, nonce, bits|0xe0000001, mask) != h {
		t.Fatal("bits outside the mask changed the hash")
	}
	// Without the rolled bits, or with other bits, the share is invalid.
	if MeetsTarget(c.Hash(job, en1, en2, job.NTime, nonce, 0, 0), target) {
		t.Fatal("share valid without its version bits")
	}
	if MeetsTarget(c.Hash(job, en1, en2, job.NTime, nonce, bits^0x2000, mask), target) {
		t.Fatal("share valid with another version bit")
	}
}

func TestHashMatchesReference(t *testing.T) {
	job := testJob()
	var c Checker
	for _, nb := range []int{0, 1, 3} {
		j := *job
		j.Branches = job.Branches[:nb]
		for nonce := uint32(0); nonce < 5; nonce++ {
			h := c.Hash(&j, []byte{1, 2}, []byte{3, 4, 5}, j.NTime+nonce, nonce*0x01020304, 0, 0)
			if ref := refHash(&j, []byte{1, 2}, []byte{3, 4, 5}, j.NTime+nonce, nonce*0x01020304, j.Version); leInt(h).Cmp(ref) != 0 {
				t.Fatalf("%d branches nonce %d: %x, want %x", nb, nonce, leInt(h), ref)
			}
		}
	}
}

func TestTarget(t *testing.T) {
	diff1 := new(big.Int).Lsh(big.NewInt(0xFFFF), 208)
	f := func(diff float64, want *big.Int) {
		t.Helper()
		if got := leInt(Target(diff)); got.Cmp(want) != 0 {
			t.Errorf("Target(%g) = %x, want %x", diff, got, want)
		}
	}
	// Reference by big.Float with far more precision than needed.
	ref := func(d float64) *big.Int {
		q := new(big.Float).SetPrec(2000).SetInt(diff1)
		q.Quo(q, new(big.Float).SetPrec(2000).SetFloat64(d))
		i, _ := q.Int(nil)
		return i
	}
	f(1, diff1)
	f(2, new(big.Int).Rsh(diff1, 1))
	f(0.5, new(big.Int).Lsh(diff1, 1))
	f(1.0/1024, new(big.Int).Lsh(diff1, 10))
	for _, d := range []float64{0.01, 1e-6, 1e-7, 3, 1000, 244112.49, 1e12, 0.3} {
		f(d, ref(d))
	}
	zero, ones := new(big.Int), new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1))
	f(0, zero)
	f(-1, zero)
	f(math.NaN(), zero)
	f(math.Inf(1), zero)
	f(1e-12, ones) // Diff1 * 1e12 > 2^256
	f(math.SmallestNonzeroFloat64, ones)

	if Diff1Target != Target(1) || leInt(Diff1Target).Cmp(diff1) != 0 {
		t.Fatal("Diff1Target")
	}
	// hex of Diff1 as documented: 0x00000000FFFF0000...0000.
	if got := leInt(Diff1Target).Text(16); got != "ffff"+string(bytes.Repeat([]byte("0"), 52)) {
		t.Fatalf("diff1 = %s", got)
	}
}

func TestMeetsTargetBoundary(t *testing.T) {
	target := Target(0.01)
	if !MeetsTarget(target, target) {
		t.Fatal("hash == target must meet it")
	}
	above := leInt(target)
	above.Add(above, big.NewInt(1))
	var h [32]byte
	be := above.FillBytes(make([]byte, 32))
	for i := range h {
		h[i] = be[31-i]
	}
	if MeetsTarget(h, target) {
		t.Fatal("target+1 must not meet it")
	}
	var zero [32]byte
	if !MeetsTarget(zero, target) || MeetsTarget(target, zero) {
		t.Fatal("zero hash")
	}
}

func TestDifficulty(t *testing.T) {
	for _, d := range []float64{1e-7, 0.01, 1, 3.5, 1e6, 1e15} {
		got := Difficulty(Target(d))
		if math.Abs(got-d)/d > 1e-12 {
			t.Errorf("Difficulty(Target(%g)) = %g", d, got)
		}
	}
	var zero [32]byte
	if !math.IsInf(Difficulty(zero), 1) {
		t.Error("zero hash must have infinite difficulty")
	}
}

// splitParams splits a JSON params array the way codec.SplitArray does.
func splitParams(t *testing.T, s string) [][]byte {
	t.Helper()
	var raw []json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	out := make([][]byte, len(raw))
	for i := range raw {
		out[i] = raw[i]
	}
	return out
}

func TestParseNotifyRoundTrip(t *testing.T) {
	job := testJob()
	for _, clean := range []bool{false, true} {
		params := AppendNotifyParams(nil, job, clean)
		if !json.Valid(params) {
			t.Fatalf("invalid JSON %s", params)
		}
		got, gotClean, err := ParseNotify(splitParams(t, string(params)))
		if err != nil {
			t.Fatal(err)
		}
		if gotClean != clean || got.ID != job.ID || got.PrevHash != job.PrevHash || !bytes.Equal(got.Coinb1, job.Coinb1) ||
			!bytes.Equal(got.Coinb2, job.Coinb2) || len(got.Branches) != 3 || got.Branches[2] != job.Branches[2] ||
			got.Version != job.Version || got.NBits != job.NBits || got.NTime != job.NTime {
			t.Fatalf("round trip: %+v, want %+v", got, job)
		}
	}
	// A real notify (minerd_vs_stratum-pool-sha256.jsonl) parses as sent.
	real := `["18","8b4bc344399296864d28839bca203a96425eb50b1e81c194ec3edb8887d8d480","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20016f0446d5006b08","0f2f456c6f506f6f6c2e436c6f75642f00000000020000000000000000266a24aa21a9ede2f61c3f71d1defd3fa999dfa36953755c690689799962b48bebd836974e8cf900f2052a010000001976a914880a7fd91f9b691b66951b785d388d3d0de5c1d388ac00000000",[],"20000000","207fffff","6b00d546",false]`
	job2, clean, err := ParseNotify(splitParams(t, real))
	if err != nil || clean || job2.ID != "18" || job2.NTime != 0x6b00d546 || job2.NBits != 0x207fffff || len(job2.Branches) != 0 {
		t.Fatalf("real notify: %+v %v %v", job2, clean, err)
	}
	// Header order: the first notify word 8b4bc344 becomes bytes 44 c3 4b 8b.
	if job2.PrevHash[0] != 0x44 || job2.PrevHash[3] != 0x8b || job2.PrevHash[28] != 0x80 {
		t.Fatalf("prevhash not word-swapped: %x", job2.PrevHash)
	}
	if got := AppendNotifyParams(nil, &job2, false); string(got) != real {
		t.Fatalf("re-encoded\n%s\nwant\n%s", got, real)
	}
}

func TestParseNotifyErrors(t *testing.T) {
	const h64 = `"` + "00000000000000000000000000000000000000000000000000000000000000aa" + `"`
	f := func(params string, want error) {
		t.Helper()
		_, _, err := ParseNotify(splitParams(t, params))
		if !errors.Is(err, want) {
			t.Errorf("%s: err %v, want %v", params, err, want)
		}
	}
	f(`["1",`+h64+`,"00","00",[],"20000000","207fffff","6b00d546"]`, nil) // clean_jobs missing: false
	f(`["1",`+h64+`,"00","00",[],"20000000","207fffff"]`, ErrNotifyParams)
	f(`[1,`+h64+`,"00","00",[],"20000000","207fffff","6b00d546",true]`, ErrNotString)
	f(`["1","00","00","00",[],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"0g","00",[],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","000",[],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","00",["00"],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","00",[`+h64[:40]+`"],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","00",[`+h64[:20]+h64[1:]+`],"20000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","00",{},"20000000","207fffff","6b00d546",true]`, ErrNotArray)
	f(`["1",`+h64+`,"00","00",[],"2000000","207fffff","6b00d546",true]`, ErrNotHex)
	f(`["1",`+h64+`,"00","00",[],"20000000",536870912,"6b00d546",true]`, ErrNotString)
	f(`["1",`+h64+`,"00","00",[],"20000000","207fffff","6b00d546",1]`, ErrNotBool)
	f(`["a\"b",`+h64+`,"00","00",[`+h64+`,`+h64+`],"20000000","207fffff","6b00d546",true]`, nil)
}

func TestHashArray(t *testing.T) {
	const h = `"00000000000000000000000000000000000000000000000000000000000000aa"`
	f := func(raw string, n int, want error) {
		t.Helper()
		got, err := hashArray([]byte(raw))
		if !errors.Is(err, want) || len(got) != n {
			t.Errorf("%s: %d hashes, err %v; want %d, %v", raw, len(got), err, n, want)
		}
	}
	f(`[]`, 0, nil)
	f(` [ ] `, 0, nil)
	f(`[`+h+`]`, 1, nil)
	f(`[ `+h+` , `+h+` ]`, 2, nil)
	f(`[`+h+`,]`, 0, ErrNotArray)
	f(`[,`+h+`]`, 0, ErrNotArray)
	f(`[`+h+` `+h+`]`, 0, ErrNotArray)
	f(`[`+h, 0, ErrNotArray)
	f(`["00]`, 0, ErrNotArray)
	f(`[1]`, 0, ErrNotArray)
	f(`null`, 0, ErrNotArray)
}

func TestZeroAllocs(t *testing.T) {
	job := testJob()
	en1, en2 := []byte{1, 2, 3, 4}, make([]byte, 8)
	target := Target(0.01)
	var c Checker
	c.Hash(job, en1, en2, 1, 2, 0, 0) // warm up: the SHA-256 state is made once
	var sink [32]byte
	var ok bool
	var d float64
	n := testing.AllocsPerRun(200, func() {
		sink = c.Hash(job, en1, en2, job.NTime, 12345, 0x4000, 0x1fffe000)
		ok = MeetsTarget(sink, target)
		d = Difficulty(sink)
		hdr := Header(job, &sink, job.NTime, 1, job.Version)
		PutNonce(&hdr, 2)
		sink = HeaderHash(&hdr)
	})
	if n != 0 {
		t.Fatalf("share check allocates %v times per run, want 0", n)
	}
	_, _ = ok, d
}

func BenchmarkCheckerHash(b *testing.B) {
	job := testJob()
	en1, en2 := []byte{1, 2, 3, 4}, make([]byte, 8)
	target := Target(0.01)
	var c Checker
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h := c.Hash(job, en1, en2, job.NTime, uint32(i), 0, 0)
		if MeetsTarget(h, target) && Difficulty(h) < 0 {
			b.Fatal("unreachable")
		}
	}
}

func BenchmarkHeaderHash(b *testing.B) {
	job := testJob()
	var root [32]byte
	hdr := Header(job, &root, job.NTime, 0, job.Version)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		PutNonce(&hdr, uint32(i))
		_ = HeaderHash(&hdr)
	}
}

func BenchmarkTarget(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Target(0.01)
	}
}
