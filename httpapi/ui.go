package httpapi

import "github.com/valyala/fasthttp"

// serveUI serves the dashboard; placeholder until the dashboard lands.
func (s *Server) serveUI(ctx *fasthttp.RequestCtx, path string) bool { return false }
