package metrics

import (
	"fmt"
	"math"
	"testing"
)

// TestPoolUp checks that proxy_pool_up counts logged-in upstream connections per pool: 1 while
// at least one is logged in, whichever account it serves, 0 for a pool in use with none.
func TestPoolUp(t *testing.T) {
	r, _ := newTestRegistry(t, Config{Tag: "px"})
	up := func(pool string, want float64) {
		t.Helper()
		x := parse(t, r)
		if got := x.value(t, "proxy_pool_up", map[string]string{"proxy": "px", "hash": "sha256", "pool": pool}); got != want {
			t.Errorf("proxy_pool_up{pool=%q} = %v, want %v", pool, got, want)
		}
	}
	// Nothing declared: no family at all (a checker-valid page has no empty families).
	if x := parse(t, r); x.families["proxy_pool_up"] != nil || x.families["proxy_upstream_reconnects_total"] != nil {
		t.Fatal("pool families before any pool is in use")
	}

	// Two accounts use the primary, one the backup; the backup never connects.
	r.PoolInUse("sha256", "primary:1", 1)
	r.PoolInUse("sha256", "primary:1", 1)
	r.PoolInUse("sha256", "backup:1", 1)
	up("primary:1", 0)
	up("backup:1", 0) // declared before any connection: 0, not absent
	x := parse(t, r)
	if got := x.value(t, "proxy_pool_divider", map[string]string{"pool": "backup:1"}); got != 1 {
		t.Errorf("divider %v", got)
	}
	if got := x.value(t, "proxy_upstream_reconnects_total", map[string]string{"pool": "backup:1", "outcome": "connect_failed"}); got != 0 {
		t.Errorf("attempts of an unattempted pool %v, want 0", got)
	}

	r.PoolLogin("sha256", "primary:1", 1, +1) // account A logs in
	r.PoolLogin("sha256", "primary:1", 1, +1) // account B logs in
	up("primary:1", 1)
	r.PoolLogin("sha256", "primary:1", 1, -1) // A leaves: B still mines there
	up("primary:1", 1)
	r.PoolLogin("sha256", "primary:1", 1, -1) // B leaves
	up("primary:1", 0)

	// Failover to the backup and failback: the backup goes back to 0 once its connection ends.
	r.PoolLogin("sha256", "backup:1", 1, +1)
	up("backup:1", 1)
	r.PoolLogin("sha256", "primary:1", 1, +1)
	r.PoolLogin("sha256", "backup:1", 1, -1)
	up("backup:1", 0)
	up("primary:1", 1)

	// Another algorithm on the same address is another pool.
	r.PoolLogin("scrypt", "primary:1", 65536, +1)
	if got := parse(t, r).value(t, "proxy_pool_divider", map[string]string{"hash": "scrypt", "pool": "primary:1"}); got != 65536 {
		t.Errorf("scrypt divider %v", got)
	}
}

// TestPoolLoginClamp checks that a -1 without its +1 (a caller's bug) cannot drive the count
// below 0, where the next +1 would leave proxy_pool_up at 0 with a connection logged in.
func TestPoolLoginClamp(t *testing.T) {
	r, _ := newTestRegistry(t, Config{})
	up := func(want float64) {
		t.Helper()
		if got := parse(t, r).value(t, "proxy_pool_up", nil); got != want {
			t.Errorf("proxy_pool_up = %v, want %v", got, want)
		}
	}
	r.PoolLogin("sha256", "p:1", 1, -1) // never logged in
	up(0)
	r.PoolLogin("sha256", "p:1", 1, +1)
	r.PoolLogin("sha256", "p:1", 1, -1)
	r.PoolLogin("sha256", "p:1", 1, -1) // an end counted twice
	up(0)
	r.PoolLogin("sha256", "p:1", 1, +1)
	up(1) // the count restarted from 0, not from -2
	if n := r.pools[poolKey{"sha256", "p:1"}].logins; n != 1 {
		t.Errorf("logins %d, want 1", n)
	}
}

// TestPoolDividerFallback checks that a bogus divider is exposed as 1, never NaN or +Inf.
func TestPoolDividerFallback(t *testing.T) {
	f := func(d float64) {
		t.Helper()
		r, _ := newTestRegistry(t, Config{})
		r.PoolInUse("sha256", "p:1", d)
		if got := parse(t, r).value(t, "proxy_pool_divider", nil); got != 1 {
			t.Errorf("divider %v exposed as %v, want 1", d, got)
		}
	}
	f(0)
	f(-1)
	f(math.NaN())
	f(math.Inf(1))
}

// TestPoolInvalid checks the counts per pool and method and the cap on distinct methods.
func TestPoolInvalid(t *testing.T) {
	r, _ := newTestRegistry(t, Config{Tag: "px", MaxLabelLen: 24})
	r.PoolInUse("sha256", "a:1", 1)
	if parse(t, r).families["proxy_pool_invalid_messages_total"] != nil {
		t.Fatal("invalid-message family before any invalid message")
	}
	r.PoolInvalid("a:1", "mining.notify")
	r.PoolInvalid("a:1", "mining.notify")
	r.PoolInvalid("a:1", "mining.set_difficulty")
	r.PoolInvalid("b:1", "mining.notify")
	r.PoolInvalid("b:1", "")
	r.PoolInvalid("b:1", "a very long method name indeed") // cut to 24 bytes
	for i := range maxInvalidMethods + 5 {
		r.PoolInvalid("c:1", fmt.Sprintf("m%d", i))
	}
	r.PoolInvalid("c:1", "m0") // one of the first 16: still its own series
	x := parse(t, r)
	f := func(pool, method string, want float64) {
		t.Helper()
		l := map[string]string{"proxy": "px", "pool": pool, "method": method}
		if got := x.value(t, "proxy_pool_invalid_messages_total", l); got != want {
			t.Errorf("%v = %v, want %v", l, got, want)
		}
	}
	f("a:1", "mining.notify", 2)
	f("a:1", "mining.set_difficulty", 1)
	f("b:1", "mining.notify", 1)
	f("b:1", "", 1)
	f("b:1", "a very long method name ", 1)
	f("c:1", "m0", 2)
	f("c:1", "m15", 1)
	f("c:1", "other", 5)
	if n := len(x.find("proxy_pool_invalid_messages_total", map[string]string{"pool": "c:1"})); n != maxInvalidMethods+1 {
		t.Errorf("%d series for c:1, want %d", n, maxInvalidMethods+1)
	}
}
