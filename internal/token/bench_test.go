package token

import (
	"context"
	"testing"
	"time"
)

func BenchmarkVerify(b *testing.B) {
	k := newRSAKey(b, "k1")
	v, err := NewVerifier(NewStaticKeySet(k.public()), Config{Issuer: testIssuer, Now: func() time.Time { return testNow }})
	if err != nil {
		b.Fatal(err)
	}
	raw := sign(b, "RS256", k.priv, "k1", validClaims())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
