# The Rego twin of tollgate's bench policy `orders`: a bearer token in Authorization,
# signed by a key of the provider's JWKS (fetched once at start into data.jwks), issued
# by data.issuer for data.audience, unexpired, with the scope orders.read.
package tollgate.authz

default allow := false

token := substring(auth, 7, -1) if {
	auth := input.attributes.request.http.headers.authorization
	lower(substring(auth, 0, 7)) == "bearer "
}

allow if {
	[valid, _, payload] := io.jwt.decode_verify(token, {
		"cert": data.jwks,
		"iss": data.issuer,
		"aud": data.audience,
	})
	valid
	"orders.read" in split(payload.scope, " ")
}
