/*
Package httpapi serves the proxy's HTTP interface with fasthttp: user
registration and listings under /api/v1/, the Prometheus exposition at
/metrics and a readiness probe at /healthz.

# Basics

	api := httpapi.New(httpapi.Config{Store: st, Metrics: reg.WritePrometheus, Log: log, AuthToken: token})
	go api.ListenAndServe() // ":12743" unless Config.Addr says otherwise
	defer api.Shutdown()

Routes:

	POST|PUT /api/v1/users        register {"pool","user","password","backups":[...]}:
	                              201 {"name":"<16 hex>","error":""} for a new name,
	                              200 with the existing name for the same pool/user/password,
	                              with "updated":true when a given backup list replaced the stored one
	GET      /api/v1/users        {"users":[...]}   no passwords
	GET      /api/v1/users/{name} one user          no passwords
	GET      /api/v1/pools        {"pools":[...]}
	GET      /api/v1/algorithms   {"algorithms":[...]}
	GET      /metrics             Prometheus text format (404 if Config.Metrics is nil)
	GET      /healthz             "ok", or 503 with the reason

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

Routing is a switch on the path: six routes do not justify a router
dependency.

# Caveats

Passwords never leave the process through this package: listings carry
no password field, requests are logged at debug level without bodies or
headers, and JSON error messages never quote the body.

When Config.AuthToken is empty, anyone who reaches the port can register
users and read the pool logins; Serve logs a warning. /metrics and /healthz
are always open.
*/
package httpapi
