package dialectsim_test

import (
	"fmt"
	"time"

	"github.com/stratum-proxy/stratum-proxy/bench/dialectsim"
)

// A miner mining straight on a pool; a proxy test puts the proxy between
// the two (the miner dials the proxy, the proxy dials pool.Addr()) and
// checks the pool's Stats.
func Example() {
	pool, err := dialectsim.StartPool(dialectsim.PoolConfig{Kind: dialectsim.EthStratum})
	if err != nil {
		panic(err)
	}
	defer pool.Close()
	m, err := dialectsim.DialMiner(dialectsim.MinerConfig{
		Kind: dialectsim.EthStratum, Addr: pool.Addr(),
		User: "0xWALLET", Worker: "rig1", Pass: "x", Timeout: 5 * time.Second,
	})
	if err != nil {
		panic(err)
	}
	defer m.Close()
	accepted, rejected, err := m.Mine(3)
	fmt.Println(accepted, rejected, err)
	ok, _ := m.ResubmitLast()
	st := pool.Stats()
	fmt.Println(ok, st.Accepted, st.Duplicate)
	// Output:
	// 3 0 <nil>
	// false 3 1
}
