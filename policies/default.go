package policies

import "time"

// DefaultFile is the built-in policy used when no policy file is given:
//
//	levels: ["1", "2"]
//	rules:
//	  - name: reads
//	    match: {methods: [GET, HEAD]}
//	    require: {acr: "1"}
//	  - name: writes
//	    match: {methods: [POST, PUT, PATCH, DELETE]}
//	    require: {acr: "2", max_age: 5m}
//	default: deny
//
// Reads need a valid token at level 1 (Keycloak's password login), every
// mutation a step-up to level 2 no older than 5 minutes, and everything
// else (OPTIONS, TRACE, CONNECT, unknown methods) is denied: the default
// fails closed. Tokens whose acr Keycloak set to "0" (SSO cookie
// re-authentication) rank below level 1; a deployment that serves such
// tokens writes its own file. The caller owns the returned value.
func DefaultFile() File {
	return File{
		Levels: []string{"1", "2"},
		Rules: []RuleSpec{
			{
				Name:    "reads",
				Match:   MatchSpec{Methods: []string{"GET", "HEAD"}},
				Require: RequireSpec{ACR: "1"},
			},
			{
				Name:    "writes",
				Match:   MatchSpec{Methods: []string{"POST", "PUT", "PATCH", "DELETE"}},
				Require: RequireSpec{ACR: "2", MaxAge: Duration(5 * time.Minute)},
			},
		},
		Default: "deny",
	}
}

// Default returns the compiled built-in policy (see DefaultFile).
func Default() *Policy {
	p, err := Compile(DefaultFile())
	if err != nil {
		// DefaultFile is a constant checked by the tests.
		panic("policies: built-in policy does not compile: " + err.Error())
	}
	return p
}
