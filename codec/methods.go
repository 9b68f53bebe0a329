package codec

// Method names, in the order they usually appear on the wire.
//
// Bitcoin-family stratum v1, miner to proxy:
//
//	mining.configure           (BIP310, may come before subscribe) -> {"version-rolling":true,...}
//	mining.subscribe           [user_agent, session_id?]  -> [[subscriptions], extranonce1, extranonce2_size]
//	mining.extranonce.subscribe []                        -> true
//	mining.authorize           [user, password]           -> true or error
//	mining.suggest_difficulty  [diff]                     (optional)
//	mining.submit              [worker, job_id, extranonce2, ntime, nonce, version_bits?] -> true or error
//	mining.ping, client.get_version                       answers to the pool's requests
//
// Pool to miner (notifications with "id":null unless noted):
//
//	mining.set_difficulty   [diff]
//	mining.notify           [job_id, prevhash, coinb1, coinb2, [branch...], version, nbits, ntime, clean_jobs]
//	mining.set_extranonce   [extranonce1, extranonce2_size]
//	mining.set_version_mask [mask]
//	client.reconnect        [host?, port?, wait_s?]
//	client.show_message     [text]
//	client.get_version      (a request: answer "name/version")
//	mining.ping             (a request with an id; ckpool sends it, minerd never answers)
//
// Later dialects sharing the port: EthereumStratum/1.0.0 (NiceHash) reuses
// the mining.* names; ETHProxy uses eth_submitLogin, eth_getWork,
// eth_submitWork and eth_submitHashrate; CryptoNote (xmrig) uses login,
// submit, job (pushed) and keepalived, with object params.
const (
	MethodConfigure           = "mining.configure"
	MethodSubscribe           = "mining.subscribe"
	MethodExtranonceSubscribe = "mining.extranonce.subscribe"
	MethodAuthorize           = "mining.authorize"
	MethodSuggestDifficulty   = "mining.suggest_difficulty"
	MethodSubmit              = "mining.submit"
	MethodPing                = "mining.ping"
	MethodGetVersion          = "client.get_version"

	MethodSetDifficulty  = "mining.set_difficulty"
	MethodNotify         = "mining.notify"
	MethodSetExtranonce  = "mining.set_extranonce"
	MethodSetVersionMask = "mining.set_version_mask"
	MethodReconnect      = "client.reconnect"
	MethodShowMessage    = "client.show_message"

	// ETHProxy (Ethereum "stratum" as spoken by eth-proxy and most GPU miners).
	MethodEthSubmitLogin    = "eth_submitLogin"
	MethodEthGetWork        = "eth_getWork"
	MethodEthSubmitWork     = "eth_submitWork"
	MethodEthSubmitHashrate = "eth_submitHashrate"

	// CryptoNote (xmrig): CN is for CryptoNote, since the bare names
	// "submit" and "job" would read as stratum v1 concepts.
	MethodCNLogin      = "login"
	MethodCNSubmit     = "submit"
	MethodCNJob        = "job"
	MethodCNKeepalived = "keepalived"
)

// EthereumStratumVersion is the protocol string an EthereumStratum/1.0.0
// (NiceHash) miner sends as the second mining.subscribe param, and that the
// pool echoes in its subscription.
const EthereumStratumVersion = "EthereumStratum/1.0.0"

// Stratum v1 error codes, sent as the first element of an error array
// [code, "message", data].
const (
	CodeOther         = 20 // other or unknown reason
	CodeJobNotFound   = 21 // job not found: a stale share
	CodeDuplicate     = 22 // share already submitted
	CodeLowDifficulty = 23 // share above the target
	CodeUnauthorized  = 24 // worker not authorized
	CodeNotSubscribed = 25 // mining.subscribe not done yet
)

// JSON-RPC 2.0 codes, used when the proxy answers a line the codec rejected.
const (
	CodeParseError     = -32700 // the line is not valid JSON (ErrInvalidJSON, ErrLineTooLong)
	CodeInvalidRequest = -32600 // valid JSON but not a request (ErrNotObject, ErrBadID, ErrBadMethod)
	CodeMethodNotFound = -32601 // unknown method
	CodeInvalidParams  = -32602 // params of the wrong shape (ErrBadParams, ErrNot*)
)
