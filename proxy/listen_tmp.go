package proxy

// checkListen is replaced by the ops branch's proxy/listen.go.
func checkListen(string) error { return nil }
