package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// jwksServer serves a JWKS that the test can change, counting requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	body     []byte
	status   int
	gate     chan struct{} // when set, requests wait on it
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK}
	s.setKeys(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		gate, body, status := s.gate, s.body, s.status
		s.mu.Unlock()
		if gate != nil {
			<-gate
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRemoteKeySetRotation(t *testing.T) {
	t.Parallel()
	k1, k2 := newRSAKey(t, "k1"), newRSAKey(t, "k2")
	srv := newJWKSServer(t, k1.public())
	clock := &fakeClock{t: testNow}
	ks := NewRemoteKeySet(context.Background(), srv.URL, KeySetOptions{Now: clock.Now})
	v, err := NewVerifier(ks, Config{Issuer: testIssuer, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(ctx, sign(t, "RS256", k1.priv, "k1", validClaims())); err != nil {
			t.Fatalf("k1: %v", err)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times for three tokens of one key, want 1", n)
	}

	// Keycloak rotates: k2 signs from now on.
	srv.setKeys(t, k2.public(), k1.public())
	clock.Add(11 * time.Second) // past the refresh floor
	for i := 0; i < 3; i++ {
		if _, err := v.Verify(ctx, sign(t, "RS256", k2.priv, "k2", validClaims())); err != nil {
			t.Fatalf("k2 after rotation: %v", err)
		}
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (the new kid fetched once)", n)
	}
	if _, err := v.Verify(ctx, sign(t, "RS256", k1.priv, "k1", validClaims())); err != nil {
		t.Fatalf("k1 still published: %v", err)
	}
}

func TestRemoteKeySetRefreshFloor(t *testing.T) {
	t.Parallel()
	k1 := newRSAKey(t, "k1")
	srv := newJWKSServer(t, k1.public())
	clock := &fakeClock{t: testNow}
	ks := NewRemoteKeySet(context.Background(), srv.URL, KeySetOptions{Now: clock.Now, RefreshFloor: 10 * time.Second})
	v, err := NewVerifier(ks, Config{Issuer: testIssuer, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	forged := func(i int) string { return sign(t, "RS256", k1.priv, fmt.Sprintf("random-%d", i), validClaims()) }
	tokens := make([]string, 200)
	for i := range tokens {
		tokens[i] = forged(i)
	}
	for round := 0; round < 2; round++ {
		before := srv.requests.Load()
		for _, tok := range tokens[round*100 : (round+1)*100] {
			if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("random kid: err = %v, want ErrUnknownKey", err)
			}
		}
		if n := srv.requests.Load() - before; n > 1 {
			t.Fatalf("round %d: 100 tokens with random kids caused %d fetches, want at most 1", round, n)
		}
		clock.Add(10 * time.Second)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("%d fetches over two floors, want 2", n)
	}
	// A good token still verifies from the cache without a fetch.
	if _, err := v.Verify(ctx, sign(t, "RS256", k1.priv, "k1", validClaims())); err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Fatalf("known kid caused a fetch: %d", n)
	}
}

func TestRemoteKeySetConcurrentMissesShareOneFetch(t *testing.T) {
	t.Parallel()
	k1 := newRSAKey(t, "k1")
	srv := newJWKSServer(t, k1.public())
	gate := make(chan struct{})
	srv.mu.Lock()
	srv.gate = gate
	srv.mu.Unlock()
	ks := NewRemoteKeySet(context.Background(), srv.URL, KeySetOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := ks.Key(context.Background(), "k1")
			errs <- err
		}()
	}
	// Let the goroutines pile up behind the one request, then release it.
	deadline := time.Now().Add(5 * time.Second)
	for srv.requests.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Key: %v", err)
		}
	}
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("%d fetches for 50 concurrent lookups, want 1", n)
	}
}

func TestRemoteKeySetUnavailable(t *testing.T) {
	t.Parallel()
	k1 := newRSAKey(t, "k1")
	srv := newJWKSServer(t, k1.public())
	srv.mu.Lock()
	srv.status = http.StatusServiceUnavailable
	srv.mu.Unlock()
	clock := &fakeClock{t: testNow}
	ks := NewRemoteKeySet(context.Background(), srv.URL, KeySetOptions{Now: clock.Now})
	if _, err := ks.Key(context.Background(), "k1"); !errors.Is(err, ErrKeySetUnavailable) {
		t.Fatalf("err = %v, want ErrKeySetUnavailable", err)
	}
	// Keycloak is back; the floor still holds off a new fetch.
	srv.mu.Lock()
	srv.status = http.StatusOK
	srv.mu.Unlock()
	if _, err := ks.Key(context.Background(), "k1"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("within floor: err = %v, want ErrUnknownKey", err)
	}
	clock.Add(10 * time.Second)
	if _, err := ks.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("after floor: %v", err)
	}
	// Keys older than MaxAge are refetched; a failed refetch keeps them.
	srv.mu.Lock()
	srv.status = http.StatusInternalServerError
	srv.mu.Unlock()
	clock.Add(11 * time.Minute)
	before := srv.requests.Load()
	if _, err := ks.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("stale key with Keycloak down: %v", err)
	}
	if srv.requests.Load() != before+1 {
		t.Fatal("stale keys were not refetched")
	}
}

func TestRemoteKeySetSkipsBadKeys(t *testing.T) {
	t.Parallel()
	k1 := newRSAKey(t, "k1")
	good, err := json.Marshal(k1.public())
	if err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"keys":[{"kty":"weird","kid":"x"},{"kty":"RSA","n":"AQAB","e":"AQAB","use":"sig"},%s,{"kty":"RSA","kid":"enc","use":"enc","n":"%s","e":"AQAB"}]}`,
		good, "sXch")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	ks := NewRemoteKeySet(context.Background(), srv.URL, KeySetOptions{})
	if _, err := ks.Key(context.Background(), "k1"); err != nil {
		t.Fatalf("good key hidden by bad neighbours: %v", err)
	}
	if _, err := ks.Key(context.Background(), "enc"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("enc key: err = %v", err)
	}
	if _, err := ks.Key(context.Background(), ""); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("empty kid: err = %v", err)
	}
}
