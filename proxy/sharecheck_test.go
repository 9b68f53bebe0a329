package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratum-proxy/stratum-proxy/codec"
	"github.com/stratum-proxy/stratum-proxy/proxy/pow"
)

// quoted returns s as a JSON string.
func quoted(s string) []byte { return []byte(`"` + s + `"`) }

// u32 formats v the way stratum sends ntime and nonces: 8 hex digits.
func u32(v uint32) string { return fmt.Sprintf("%08x", v) }

// transcriptLayout splits a captured share's extranonce2 the way the proxy
// would: the default k=2, m=2 with zero padding when it fits, else (the
// short layouts of ckpool-proxy) a one-byte prefix and no padding.
func transcriptLayout(t *testing.T, sh transcriptShare) (in shareIn) {
	t.Helper()
	en2, err := hex.DecodeString(sh.en2)
	if err != nil || len(en2) != sh.n {
		t.Fatalf("%s: extranonce2 %q, size %d", sh.file, sh.en2, sh.n)
	}
	k, m := 2, 2
	if sh.n < k+m || strings.Trim(sh.en2[2*(k+m):], "0") != "" {
		k, m = 1, sh.n-1
	}
	return shareIn{
		prefix: en2[:k],
		en2:    []byte(sh.en2[2*k : 2*(k+m)]),
		pad:    sh.n - k - m,
		ntime:  quoted(sh.ntime),
		nonce:  quoted(sh.once),
	}
}

// TestShareDifficultyTranscripts re-checks every share a real pool
// accepted through the proxy's share check in the split layout: each
// meets the difficulty the pool accepted it at, is remembered once, and
// the same share with one nonce bit flipped is below it.
func TestShareDifficultyTranscripts(t *testing.T) {
	shares := loadAcceptedShares(t)
	if len(shares) != 142 {
		t.Fatalf("found %d accepted shares in the transcripts, want 142", len(shares))
	}
	var sh shareHash
	checks := map[*job]*jobCheck{}
	jobs := map[string]*job{} // one job per notify, as the proxy publishes it
	minRatio, flippedAbove := math.Inf(1), 0
	for _, s := range shares {
		key := s.file + string(s.notify[0]) + string(s.notify[1])
		j := jobs[key]
		if j == nil {
			var err error
			if j, err = newJob(s.notify, []byte(s.en1), []byte("1-"), s.diff, false, time.Now(), nil); err != nil {
				t.Fatalf("%s: %v", s.file, err)
			}
			jobs[key], checks[j] = j, &jobCheck{}
		}
		c := checks[j]
		in := transcriptLayout(t, s)
		d, k, err := sh.shareDifficulty(j, c, algoSHA256d, &in)
		if err != nil {
			t.Fatalf("%s: share %s/%s: %v", s.file, s.en2, s.once, err)
		}
		if d < s.diff {
			t.Fatalf("%s: share %s/%s has difficulty %g, the pool accepted it at %g", s.file, s.en2, s.once, d, s.diff)
		}
		minRatio = math.Min(minRatio, d/s.diff)
		if got := hex.EncodeToString(k.en2[:k.n]); got != s.en2 {
			t.Fatalf("upstream extranonce2 %s, want %s", got, s.en2)
		}
		if c.dups.add(&k) {
			t.Fatalf("%s: first share %s/%s taken for a duplicate", s.file, s.en2, s.once)
		}
		if !c.dups.add(&k) {
			t.Fatalf("%s: resubmitted share %s/%s not found duplicate", s.file, s.en2, s.once)
		}

		nonce, _ := hexU32(s.once)
		flip := in
		flip.nonce = quoted(u32(nonce ^ 1<<(nonce%32)))
		fd, fk, err := sh.shareDifficulty(j, c, algoSHA256d, &flip)
		if err != nil {
			t.Fatal(err)
		}
		if fd >= s.diff {
			flippedAbove++ // about 1 in 2^32*diff: possible, never expected
		}
		if c.dups.add(&fk) {
			t.Fatalf("%s: share with a flipped nonce bit taken for a duplicate", s.file)
		}
	}
	if flippedAbove > 1 {
		t.Fatalf("%d shares still meet the pool's difficulty with a nonce bit flipped", flippedAbove)
	}
	t.Logf("%d accepted shares checked over %d jobs; lowest difficulty/pool difficulty %.3g", len(shares), len(jobs), minRatio)
}

// TestShareVersionRolling mines a BIP320 version-rolled share the way a
// miner does (pow.Checker on the miner-facing notify with its padding)
// and checks that the proxy's check finds it at the same difficulty, and
// that the same nonce without the version bits is a different share.
func TestShareVersionRolling(t *testing.T) {
	s := loadAcceptedShares(t)[0]
	in := transcriptLayout(t, s)
	j, err := newJob(s.notify, []byte(s.en1), []byte("1-"), s.diff, false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The miner's view: the translated notify.
	var msg codec.Message
	line := j.line(in.pad, false)
	if err := codec.Decode(line[:len(line)-1], &msg); err != nil {
		t.Fatal(err)
	}
	params, _ := codec.SplitArray(msg.Params, nil)
	mj, _, err := pow.ParseNotify(params)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := hex.DecodeString(string(in.en2))
	const mask, bits = 0x1fffe000, 0x0caa6000
	const want = 1e-5 // about 43,000 hashes
	target := pow.Target(want)
	var mc pow.Checker
	nonce := uint32(0)
	for ; ; nonce++ {
		if pow.MeetsTarget(mc.Hash(&mj, in.prefix, x, mj.NTime, nonce, bits, mask), target) {
			break
		}
	}
	in.ntime, in.nonce, in.vbits, in.mask = quoted(u32(mj.NTime)), quoted(u32(nonce)), bits, mask

	var sh shareHash
	c := &jobCheck{}
	d, k, err := sh.shareDifficulty(j, c, algoSHA256d, &in)
	if err != nil {
		t.Fatal(err)
	}
	if d < want {
		t.Fatalf("version-rolled share has difficulty %g, the miner found it at %g", d, want)
	}
	if wv := mj.Version&^mask | bits; k.version != wv {
		t.Fatalf("header version %08x, want %08x", k.version, wv)
	}
	plain := in
	plain.vbits, plain.mask = 0, 0
	pd, pk, err := sh.shareDifficulty(j, c, algoSHA256d, &plain)
	if err != nil {
		t.Fatal(err)
	}
	if pd == d || pk == k {
		t.Fatal("the version bits do not change the share")
	}
	if c.dups.add(&k) || c.dups.add(&pk) || !c.dups.add(&k) {
		t.Fatal("version bits are not part of the duplicate key")
	}

	bad := in
	bad.vbits = bits | 1 // outside the mask
	if _, _, err := sh.shareDifficulty(j, c, algoSHA256d, &bad); !errors.Is(err, errVersionBits) {
		t.Fatalf("bits outside the mask: %v, want errVersionBits", err)
	}
}

// litecoinGenesis is Litecoin's genesis block as a stratum job and share:
// the coinbase transaction (one input whose script carries the NY Times
// headline, 50 LTC to the genesis key) cut into coinb1 || en1 || P || X ||
// F || coinb2 so that F falls on the three zero bytes of the output value.
// Its merkle root is sha256d(coinbase), since the block has one
// transaction.
func litecoinGenesis(t testing.TB) (*job, shareIn) {
	t.Helper()
	const coinbase = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff" +
		"4804ffff001d0104404e592054696d65732030352f4f63742f32303131205374657665204a6f62732c20" +
		"4170706c65e280997320566973696f6e6172792c2044696573206174203536ffffffff0100" +
		"f2" + "052a" + "01" + "000000" + // en1, P, X, F
		"434104" + "0184710fa689ad5023690c80f3a49c8f13f8d45b8c857fbcbc8bc4a8e4d3eb4b10f4d4604fa08dce601aaf" +
		"0f470216fe1b51850b4acf21b179c45070ac7b03a9ac00000000"
	cut := strings.Index(coinbase, "f2052a01000000")
	coinb1, coinb2 := coinbase[:cut], coinbase[cut+len("f2052a01000000"):]
	params := [][]byte{
		quoted("1"), quoted(strings.Repeat("0", 64)), quoted(coinb1), quoted(coinb2), []byte("[]"),
		quoted("00000001"), quoted("1e0ffff0"), quoted("4e8eaab9"), []byte("true"),
	}
	j, err := newJob(params, []byte("f2"), []byte("1-"), 1, false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return j, shareIn{
		prefix: []byte{0x05, 0x2a}, en2: []byte("01"), pad: 3,
		ntime: quoted("4e8eaab9"), nonce: quoted(u32(2084524493)),
	}
}

// display is a hash as explorers show it: byte-reversed hex.
func display(h [32]byte) string {
	for i := 0; i < 16; i++ {
		h[i], h[31-i] = h[31-i], h[i]
	}
	return hex.EncodeToString(h[:])
}

// TestScryptLitecoinGenesis checks both algorithms end to end on Litecoin's
// genesis block: its sha256d block hash and its scrypt proof-of-work hash
// (both public, and the latter also what Python's hashlib.scrypt gives for
// the same header).
func TestScryptLitecoinGenesis(t *testing.T) {
	j, in := litecoinGenesis(t)
	c := &jobCheck{}
	w, err := c.work(j)
	if err != nil {
		t.Fatal(err)
	}
	k, err := newShareKey(w, &in)
	if err != nil {
		t.Fatal(err)
	}
	var sh shareHash
	f := func(a hashAlgo, want string) {
		t.Helper()
		h, err := sh.hash(w, &k, a)
		if err != nil {
			t.Fatal(err)
		}
		if got := display(h); got != want {
			t.Fatalf("%v(genesis header) = %s, want %s", a, got, want)
		}
	}
	f(algoSHA256d, "12a765e31ffd4059bada1e25190f6e98c99d9714d334efa41a195a7e7e04bfe2")
	f(algoScrypt, "0000050c34a64b415b6b15b37f2216634b5b1669cb9a2e38d76f7213b0671e00")

	// nbits 1e0ffff0 is a target of 0x0ffff0 << 216 = Diff1 * 2^12: block
	// difficulty 2^-12 in raw terms, 16 in a scrypt pool's.
	d, _, err := sh.shareDifficulty(j, c, algoScrypt, &in)
	if err != nil {
		t.Fatal(err)
	}
	if d < 0x1p-12 || d*scryptDiffFactor < 16 {
		t.Fatalf("scrypt difficulty %g (pool terms %g) below the genesis target's", d, d*scryptDiffFactor)
	}
	t.Logf("genesis scrypt difficulty %.4g raw, %.4g in a scrypt pool's terms", d, d*scryptDiffFactor)
}

func TestShareNTimeWindow(t *testing.T) {
	w := &jobWork{pj: pow.Job{NTime: 1_700_000_000}}
	f := func(ntime uint32, want error) {
		t.Helper()
		if err := w.checkNTime(ntime); err != want {
			t.Fatalf("ntime %d: %v, want %v", ntime, err, want)
		}
	}
	f(1_700_000_000, nil)
	f(1_700_000_000+7200, nil)
	f(1_700_000_000+7201, errNTimeFuture)
	f(1_699_999_999, errNTimeOld)
	f(0, errNTimeOld)
	f(math.MaxUint32, errNTimeFuture)
	top := &jobWork{pj: pow.Job{NTime: math.MaxUint32 - 10}} // no wrap-around
	if err := top.checkNTime(math.MaxUint32); err != nil {
		t.Fatal(err)
	}
	if err := top.checkNTime(5); err != errNTimeOld {
		t.Fatal(err)
	}
}

func TestShareKeyRejects(t *testing.T) {
	j, good := litecoinGenesis(t)
	w, err := (&jobCheck{}).work(j)
	if err != nil {
		t.Fatal(err)
	}
	f := func(edit func(*shareIn), want error) {
		t.Helper()
		in := good
		edit(&in)
		if _, err := newShareKey(w, &in); err != want {
			t.Fatalf("%+v: %v, want %v", in, err, want)
		}
	}
	f(func(*shareIn) {}, nil)
	f(func(in *shareIn) { in.en2 = []byte("0") }, errShareFields)
	f(func(in *shareIn) { in.en2 = []byte("zz") }, errShareFields)
	f(func(in *shareIn) { in.ntime = quoted("4e8eaab") }, errShareFields)
	f(func(in *shareIn) { in.nonce = []byte("7c3f51cd") }, errShareFields)
	f(func(in *shareIn) { in.pad = 14 }, errShareEn2Size)
	f(func(in *shareIn) { in.pad = -1 }, errShareEn2Size)
	f(func(in *shareIn) { in.vbits, in.mask = 0x2000, 0x1fffe000 }, nil)
	f(func(in *shareIn) { in.vbits = 0x2000 }, errVersionBits)
}

// TestShareCheckAllocs proves the per-share sha256d work (share decode,
// ntime window, coinbase, merkle root, header, hash, difficulty) does not
// allocate once the job is decoded, on a job with a full merkle branch.
func TestShareCheckAllocs(t *testing.T) {
	j, in := mainnetJob(t)
	c := &jobCheck{}
	var sh shareHash
	var sink float64
	seed := maphash.MakeSeed()
	n := testing.AllocsPerRun(500, func() {
		d, k, err := sh.shareDifficulty(j, c, algoSHA256d, &in)
		if err != nil {
			t.Fatal(err)
		}
		k.nonce++
		sink += d + float64(k.sum(seed)&1)
	})
	if n != 0 {
		t.Fatalf("sha256d share check allocates %v times per share, want 0", n)
	}
	_ = sink
}

// TestDupSetBounded fills one job's set past maxDupKeys: the oldest keys
// are forgotten, the newest remembered, the size stays at the bound.
func TestDupSetBounded(t *testing.T) {
	var d dupSet
	key := func(i int) *shareKey { return &shareKey{n: 4, nonce: uint32(i), ntime: 1} }
	const extra = 10
	for i := 0; i < maxDupKeys+extra; i++ {
		if d.add(key(i)) {
			t.Fatalf("key %d taken for a duplicate", i)
		}
	}
	if n := d.len(); n != maxDupKeys {
		t.Fatalf("set holds %d keys, want %d", n, maxDupKeys)
	}
	if !d.add(key(maxDupKeys+extra-1)) || !d.add(key(extra)) {
		t.Fatal("recent keys forgotten")
	}
	if d.add(key(extra - 1)) {
		t.Fatal("an evicted key is still remembered")
	}
	if n := d.len(); n != maxDupKeys {
		t.Fatalf("set holds %d keys after re-adding, want %d", n, maxDupKeys)
	}
}

// TestDupSetConcurrent has several loops submit the same shares to one
// job: each share is new exactly once. Run with -race.
func TestDupSetConcurrent(t *testing.T) {
	j, in := litecoinGenesis(t)
	c := &jobCheck{}
	const loops, shares = 4, 2000
	var wg sync.WaitGroup
	fresh := make([]int, loops)
	works := make([]*jobWork, loops)
	for l := 0; l < loops; l++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var sh shareHash
			for i := 0; i < shares; i++ {
				s := in
				s.nonce = quoted(u32(uint32(i)))
				_, k, err := sh.shareDifficulty(j, c, algoSHA256d, &s)
				if err != nil {
					t.Error(err)
					return
				}
				if !c.dups.add(&k) {
					fresh[l]++
				}
			}
			works[l], _ = c.work(j)
		}()
	}
	wg.Wait()
	total := 0
	for l := range fresh {
		total += fresh[l]
		if works[l] != works[0] {
			t.Fatal("loops see different decoded jobs")
		}
	}
	if total != shares {
		t.Fatalf("%d shares recorded as new, want %d", total, shares)
	}
}

// mainnetJob is a job shaped like a Bitcoin mainnet one: a 250-byte
// coinbase (with a 4-byte pool extranonce1 and an 8-byte extranonce2 of
// which the proxy's layout takes P=2, X=2, F=4) and 12 merkle branches
// (a block of about 3,000 transactions).
func mainnetJob(t testing.TB) (*job, shareIn) {
	t.Helper()
	var br []string
	for i := 0; i < 12; i++ {
		br = append(br, `"`+strings.Repeat(fmt.Sprintf("%02x", 0x10+i), 32)+`"`)
	}
	params := [][]byte{
		quoted("6a1f"), quoted(strings.Repeat("ab", 32)),
		quoted(strings.Repeat("01", 100)), quoted(strings.Repeat("02", 138)),
		[]byte("[" + strings.Join(br, ",") + "]"),
		quoted("20000000"), quoted("17034219"), quoted("66000000"), []byte("false"),
	}
	j, err := newJob(params, []byte("0a0b0c0d"), []byte("1-"), 65536, false, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return j, shareIn{
		prefix: []byte{0x12, 0x34}, en2: []byte("abcd"), pad: 4,
		ntime: quoted("66000010"), nonce: quoted("deadbeef"), vbits: 0x00006000, mask: 0x1fffe000,
	}
}

func benchShare(b *testing.B, a hashAlgo, j *job, in shareIn) {
	c := &jobCheck{}
	var sh shareHash
	if _, _, err := sh.shareDifficulty(j, c, a, &in); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := sh.shareDifficulty(j, c, a, &in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e3, "µs/share")
}

// BenchmarkShareSHA256d is the whole per-share sha256d check on a
// mainnet-shaped job (12 branches).
func BenchmarkShareSHA256d(b *testing.B) {
	j, in := mainnetJob(b)
	benchShare(b, algoSHA256d, j, in)
}

// BenchmarkShareSHA256dNoBranches is the same on a job without branches
// (a template with no transactions, as in the regtest transcripts).
func BenchmarkShareSHA256dNoBranches(b *testing.B) {
	j, in := litecoinGenesis(b)
	benchShare(b, algoSHA256d, j, in)
}

// BenchmarkShareScrypt is the per-share scrypt (N=1024) check;
// golang.org/x/crypto/scrypt allocates its scratch on every call.
func BenchmarkShareScrypt(b *testing.B) {
	j, in := litecoinGenesis(b)
	benchShare(b, algoScrypt, j, in)
}

// BenchmarkShareDup is one duplicate-set insert on a job holding
// maxDupKeys keys (steady state: each insert evicts the oldest).
func BenchmarkShareDup(b *testing.B) {
	var d dupSet
	k := shareKey{n: 8, ntime: 1}
	for i := 0; i < maxDupKeys; i++ {
		k.nonce = uint32(i)
		d.add(&k)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k.nonce = uint32(maxDupKeys + i)
		d.add(&k)
	}
}
