package token

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// KeySet gives the verifier the public key a token names.
type KeySet interface {
	// Key returns the signature key with the given key id. It returns an
	// error wrapping ErrUnknownKey if the set has no such signature key,
	// and ErrKeySetUnavailable if the set could not be fetched.
	Key(ctx context.Context, kid string) (jose.JSONWebKey, error)
}

// StaticKeySet is a fixed set of public keys, for resource servers that pin
// keys and for tests. Keys without a key id, and keys whose use is not
// "sig" (or empty), are never returned.
type StaticKeySet struct {
	keys map[string]jose.JSONWebKey
}

// NewStaticKeySet copies the signature keys of keys; private keys are
// reduced to their public half.
func NewStaticKeySet(keys ...jose.JSONWebKey) *StaticKeySet {
	return &StaticKeySet{keys: indexKeys(keys)}
}

// Key implements KeySet.
func (s *StaticKeySet) Key(_ context.Context, kid string) (jose.JSONWebKey, error) {
	if k, ok := s.keys[kid]; ok && kid != "" {
		return k, nil
	}
	return jose.JSONWebKey{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// indexKeys keeps the usable signature keys by kid.
func indexKeys(keys []jose.JSONWebKey) map[string]jose.JSONWebKey {
	m := make(map[string]jose.JSONWebKey, len(keys))
	for _, k := range keys {
		if k.KeyID == "" || k.Key == nil || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
			if k.Key == nil { // symmetric keys have no public half
				continue
			}
		}
		if _, dup := m[k.KeyID]; dup {
			continue // first wins; a later duplicate must not replace it
		}
		m[k.KeyID] = k
	}
	return m
}

// KeySetOptions tune a RemoteKeySet. Zero values mean the documented defaults.
type KeySetOptions struct {
	// HTTPClient fetches the JWKS. Defaults to a client with a 10s timeout.
	HTTPClient *http.Client
	// RefreshFloor is the least time between two fetches. A token with an
	// unknown kid causes a fetch only if the last one started at least this
	// long ago, so a flood of tokens with random key ids costs Keycloak at
	// most one request per floor. Defaults to 10 seconds.
	RefreshFloor time.Duration
	// MaxAge is how long fetched keys are used before the set is fetched
	// again on the next lookup (a key removed from Keycloak stops being
	// trusted after at most MaxAge). If that fetch fails, the keys already
	// known keep working. Defaults to 10 minutes.
	MaxAge time.Duration
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

// maxJWKSBytes bounds a JWKS response.
const maxJWKSBytes = 1 << 20

// RemoteKeySet is a JWKS fetched over HTTP (Keycloak's
// /realms/{realm}/protocol/openid-connect/certs), cached and refreshed on
// an unknown key id no more often than the refresh floor. Concurrent
// lookups that miss share one fetch. Safe for concurrent use.
type RemoteKeySet struct {
	ctx    context.Context
	url    string
	client *http.Client
	floor  time.Duration
	maxAge time.Duration
	now    func() time.Time

	mu          sync.Mutex
	keys        map[string]jose.JSONWebKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch started
	inflight    *fetchCall
}

type fetchCall struct {
	done chan struct{}
	err  error
}

// NewRemoteKeySet returns a key set fetching jwksURL lazily, on the first
// lookup. ctx bounds the life of the set: fetches run under it (not under
// the context of the Verify call that triggered them, so one cancelled
// request does not fail the others sharing the fetch), and once it is done
// every fetch fails.
func NewRemoteKeySet(ctx context.Context, jwksURL string, opts KeySetOptions) *RemoteKeySet {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.RefreshFloor <= 0 {
		opts.RefreshFloor = 10 * time.Second
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &RemoteKeySet{
		ctx:    ctx,
		url:    jwksURL,
		client: opts.HTTPClient,
		floor:  opts.RefreshFloor,
		maxAge: opts.MaxAge,
		now:    opts.Now,
	}
}

// Key implements KeySet.
func (r *RemoteKeySet) Key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	if kid == "" {
		return jose.JSONWebKey{}, fmt.Errorf("%w: token has no kid", ErrUnknownKey)
	}
	r.mu.Lock()
	k, known := r.keys[kid]
	fresh := !r.fetchedAt.IsZero() && r.now().Sub(r.fetchedAt) < r.maxAge
	if known && fresh {
		r.mu.Unlock()
		return k, nil
	}
	call := r.inflight
	if call == nil {
		if !r.attemptedAt.IsZero() && r.now().Sub(r.attemptedAt) < r.floor {
			r.mu.Unlock()
			if known {
				return k, nil
			}
			return jose.JSONWebKey{}, fmt.Errorf("%w: kid %q (key set refreshed less than %s ago)", ErrUnknownKey, kid, r.floor)
		}
		call = &fetchCall{done: make(chan struct{})}
		r.inflight = call
		r.attemptedAt = r.now()
		go r.fetch(call)
	}
	r.mu.Unlock()

	select {
	case <-call.done:
	case <-ctx.Done():
		return jose.JSONWebKey{}, fmt.Errorf("token: waiting for key set: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if nk, ok := r.keys[kid]; ok {
		return nk, nil
	}
	if call.err != nil {
		if known {
			return k, nil // keep trusting a key we had while Keycloak is unreachable
		}
		return jose.JSONWebKey{}, call.err
	}
	return jose.JSONWebKey{}, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
}

// fetch runs one JWKS request and publishes its result to the waiters.
func (r *RemoteKeySet) fetch(call *fetchCall) {
	keys, err := r.get()
	r.mu.Lock()
	if err == nil {
		r.keys = keys
		r.fetchedAt = r.now()
	}
	call.err = err
	r.inflight = nil
	r.mu.Unlock()
	close(call.done)
}

func (r *RemoteKeySet) get() (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySetUnavailable, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrKeySetUnavailable, r.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrKeySetUnavailable, r.url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %d", ErrKeySetUnavailable, r.url, resp.StatusCode)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("%w: %s: response over %d bytes", ErrKeySetUnavailable, r.url, maxJWKSBytes)
	}
	return parseJWKS(body)
}

// parseJWKS reads a JWKS key by key, so one key of a type go-jose does not
// know (or a malformed one) does not hide the others.
func parseJWKS(body []byte) (map[string]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%w: decoding JWKS: %v", ErrKeySetUnavailable, err)
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, raw := range set.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		keys = append(keys, k)
	}
	return indexKeys(keys), nil
}
