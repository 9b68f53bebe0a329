/*
Package httpapi serves the proxy's HTTP interface with fasthttp: user
registration and listings under /api/v1/, the Prometheus exposition at
/metrics and a readiness probe at /healthz.

# Basics

	api := httpapi.New(httpapi.Config{Store: st, Metrics: reg.WritePrometheus, Log: log, AuthToken: token})
	go api.ListenAndServe() // ":12743" unless Config.Addr says otherwise
	defer api.Shutdown()

Routes (the full list, with every status, is openapi.json, served at
/api/v1/openapi.json; TestOpenAPIMatchesRouter checks the two agree):

	POST|PUT /api/v1/users        register {"pool","user","password","backups":[...]} (open
	                              unless Config.RegisterNeedsToken)
	GET      /api/v1/users[/{name}]                       no passwords
	PATCH|DELETE /api/v1/users/{name}                     password/backups; delete closes its miners
	GET|POST /api/v1/pools, GET|PATCH|DELETE /api/v1/pools/{addr}
	GET|POST /api/v1/algorithms, GET|PATCH|DELETE /api/v1/algorithms/{name}
	GET      /api/v1/stats, /api/v1/workers, /api/v1/history
	DELETE   /api/v1/workers/{id}                         kick
	GET      /metrics, /healthz, /api/v1/openapi.json     open
	GET      /, /ui/...                                   the dashboard (open; it asks for the token)

Everything else under /api/ needs "Authorization: Bearer <token>"; an
empty Config.AuthToken closes it entirely (the proxy always sets one).
Questions about miners go to Config.Live (the running proxy), which
answers them on its event loops.

Every error under /api/ answers {"name":"","error":"<what is wrong>"}, the
registration answer's shape, so one client type decodes all of them:
400 for a malformed body or a missing or invalid field, 401 without the
bearer token, 404 for an unknown user or route, 405 for a wrong method,
413 for a body over Config.MaxBodySize, 415 for a form or other
non-JSON content type, 422 for a pool that is not in the pool table.

A backup's user and password default to the primary's when omitted, so
the usual "same login on another pool" backup is just {"pool":"..."}.
The primary's password may be empty (many pools accept anything); pool and
user are required.

Registering the same pool, user and password again keeps the name. A
"backups" list in that request replaces the stored backups ("backups":[]
removes them) and the answer says "updated":true; without the field the
stored backups stay.

# Choices

Registration bodies are decoded with DisallowUnknownFields: a typo such as
"passwd" would otherwise register an account with an empty password that
fails only later, at the pool, far from the mistake.

The content type is not strictly application/json: curl -d sends
application/x-www-form-urlencoded, and the README's one-line example must
work. Bodies are parsed as JSON whatever the type says; only multipart
and other clearly non-JSON types are refused.

Routing is a switch on the path with one path parameter at most: the
routes do not justify a router dependency.

# Caveats

Passwords never leave the process through this package: listings carry
no password field, requests are logged at debug level without bodies or
headers, and JSON error messages never quote the body.

When Config.AuthToken is empty the management API answers 401 to
everything; registration stays open unless Config.RegisterNeedsToken.
/metrics, /healthz, the OpenAPI document and the dashboard's static files
are always open.
*/
package httpapi
