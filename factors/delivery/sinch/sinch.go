// Package sinch places flash calls through the Sinch Verification REST API
// and lets Sinch decide whether the number the user reconstructed is the
// one that called.
//
//	start:  POST /verification/v1/verifications
//	        {"identity":{"type":"number","endpoint":"+E164"},"method":"flashCall"}
//	        -> {"id":"...","flashCall":{"cliFilter":"(.*)70123(.*)","interceptionTimeout":45,...}}
//	report: PUT /verification/v1/verifications/id/{id}
//	        {"method":"flashCall","flashCall":{"cli":"+E164 calling number"}}
//	        -> {"id":"...","status":"SUCCESSFUL"|"FAIL"|"DENIED"|"ABORTED"|"ERROR",...}
//
// Requests are authenticated as Sinch's "Application signed request"
// (the default: an HMAC-SHA-256 over method, body MD5, content type,
// x-timestamp and path, keyed with the base64-decoded application secret)
// or, where the application allows it, with HTTP Basic.
package sinch

import (
	"context"
	"crypto/hmac"
	"crypto/md5" // Sinch's signed-request scheme specifies Content-MD5; it carries no security there
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/stepup-bridge/stepup-bridge/factors/delivery"
	"github.com/stepup-bridge/stepup-bridge/factors/phone"
)

// Name is the provider name in config, metrics and errors.
const Name = "sinch"

// DefaultBaseURL is Sinch's global Verification API endpoint.
const DefaultBaseURL = "https://verification.api.sinch.com"

// Auth selects how requests are authenticated.
type Auth int

const (
	// AuthSigned signs every request ("Application" scheme); the secret
	// never travels. The default, and what Sinch recommends in production.
	AuthSigned Auth = iota
	// AuthBasic sends key and secret as HTTP Basic credentials. Only for
	// applications whose dashboard setting allows it.
	AuthBasic
)

// Config configures New.
type Config struct {
	// BaseURL of the API. Defaults to DefaultBaseURL.
	BaseURL string
	// AppKey and AppSecret are the application's key and secret from the
	// Sinch dashboard; the secret is base64, as Sinch issues it.
	AppKey    string
	AppSecret string
	// Auth defaults to AuthSigned.
	Auth Auth
	// Policy bounds each call (timeout, retries, backoff).
	Policy delivery.Policy
	// Client sends the requests. Defaults to delivery.NewHTTPClient().
	Client *http.Client
	// Now stamps signed requests (x-timestamp). Defaults to time.Now.
	Now func() time.Time
}

// Provider is the Sinch flash-call provider. Safe for concurrent use.
type Provider struct {
	base   *url.URL
	key    string
	secret string
	signK  []byte
	auth   Auth
	policy delivery.Policy
	client *http.Client
	now    func() time.Time
}

var _ delivery.CallReporter = (*Provider)(nil)

// New checks cfg and builds the provider.
func New(cfg Config) (*Provider, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("sinch: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.AppKey == "" || cfg.AppSecret == "" {
		return nil, errors.New("sinch: application key and secret are required")
	}
	p := &Provider{base: u, key: cfg.AppKey, secret: cfg.AppSecret, auth: cfg.Auth,
		policy: cfg.Policy, client: cfg.Client, now: cfg.Now}
	if cfg.Auth == AuthSigned {
		k, err := base64.StdEncoding.DecodeString(cfg.AppSecret)
		if err != nil || len(k) == 0 {
			return nil, errors.New("sinch: application secret is not base64, as Sinch issues it")
		}
		p.signK = k
	}
	if p.client == nil {
		p.client = delivery.NewHTTPClient()
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// Provider implements delivery.CallStarter.
func (p *Provider) Provider() string { return Name }

func (p *Provider) endpoint(path string) string {
	u := *p.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	return u.String()
}

// prepare authenticates one try of a request.
func (p *Provider) prepare(r *http.Request, body []byte) error {
	if p.auth == AuthBasic {
		r.SetBasicAuth(p.key, p.secret)
		return nil
	}
	ts := p.now().UTC().Format(time.RFC3339)
	r.Header.Set("x-timestamp", ts)
	r.Header.Set("Authorization", "Application "+p.key+":"+Signature(p.signK, r.Method, body, r.Header.Get("Content-Type"), ts, r.URL.Path))
	return nil
}

// Signature computes Sinch's application signed request signature:
//
//	Base64(HMAC-SHA256(key, method\nBase64(MD5(body))\ncontentType\nx-timestamp:ts\npath))
//
// key is the base64-decoded application secret.
func Signature(key []byte, method string, body []byte, contentType, timestamp, path string) string {
	sum := md5.Sum(body)
	sts := method + "\n" + base64.StdEncoding.EncodeToString(sum[:]) + "\n" + contentType + "\n" +
		"x-timestamp:" + timestamp + "\n" + path
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sts))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// apiError is Sinch's error body.
type apiError struct {
	ErrorCode json.RawMessage `json:"errorCode"`
	Message   string          `json:"message"`
}

func parseError(b []byte) (string, string) {
	var e apiError
	if json.Unmarshal(b, &e) != nil {
		return "", ""
	}
	return strings.Trim(string(e.ErrorCode), `"`), e.Message
}

type identity struct {
	Type     string `json:"type"`
	Endpoint string `json:"endpoint"`
}

type startRequest struct {
	Identity identity `json:"identity"`
	Method   string   `json:"method"`
}

type startReply struct {
	ID        string `json:"id"`
	FlashCall *struct {
		CLIFilter           string `json:"cliFilter"`
		InterceptionTimeout int    `json:"interceptionTimeout"`
		ReportTimeout       int    `json:"reportTimeout"`
		DenyCallAfter       int    `json:"denyCallAfter"`
	} `json:"flashCall"`
}

// StartCall starts a flashCall verification to the E.164 number to. It is
// never repeated after a timeout or a 5xx (the call may already ring), only
// when the connection could not be opened.
func (p *Provider) StartCall(ctx context.Context, to string) (delivery.Call, error) {
	const op = "start call"
	if !phone.Valid(to) {
		return delivery.Call{}, fmt.Errorf("sinch: %s: destination is not E.164", op)
	}
	body, err := json.Marshal(startRequest{Identity: identity{Type: "number", Endpoint: to}, Method: "flashCall"})
	if err != nil {
		return delivery.Call{}, fmt.Errorf("sinch: encoding request: %w", err)
	}
	reply, err := delivery.DoHTTP(ctx, p.client, p.policy, delivery.RetryIfNotSent, delivery.HTTPRequest{
		Provider: Name, Op: op, Method: http.MethodPost, URL: p.endpoint("/verification/v1/verifications"),
		Body: body, Prepare: p.prepare,
	}, parseError)
	if err != nil {
		return delivery.Call{}, err
	}
	var sr startReply
	if err := json.Unmarshal(reply.Body, &sr); err != nil {
		return delivery.Call{}, delivery.Malformed(Name, op, reply.Status, err)
	}
	if sr.ID == "" || sr.FlashCall == nil || sr.FlashCall.CLIFilter == "" {
		return delivery.Call{}, delivery.Malformed(Name, op, reply.Status, errors.New("reply lacks id or flashCall.cliFilter"))
	}
	if _, err := regexp.Compile(sr.FlashCall.CLIFilter); err != nil {
		return delivery.Call{}, delivery.Malformed(Name, op, reply.Status, fmt.Errorf("cliFilter: %w", err))
	}
	return delivery.Call{ID: sr.ID, CLIFilter: sr.FlashCall.CLIFilter}, nil
}

type reportRequest struct {
	Method    string `json:"method"`
	FlashCall struct {
		CLI string `json:"cli"`
	} `json:"flashCall"`
}

type reportReply struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Report statuses Sinch answers.
const (
	StatusSuccessful = "SUCCESSFUL"
	StatusFail       = "FAIL"
	StatusDenied     = "DENIED"
	StatusAborted    = "ABORTED"
	StatusError      = "ERROR"
	StatusPending    = "PENDING"
)

// ReportCall reports the full calling number cli for verification id.
// Only SUCCESSFUL verifies. FAIL, DENIED, ABORTED and PENDING, and a 404
// (the verification is unknown or gone at Sinch), are a refusal (false,
// nil); ERROR is ErrProviderUnavailable. Reporting is idempotent, so
// timeouts and 5xx are retried within the policy.
func (p *Provider) ReportCall(ctx context.Context, id, cli string) (bool, error) {
	const op = "report call"
	if id == "" || strings.ContainsAny(id, "/?#%") {
		return false, fmt.Errorf("sinch: %s: malformed verification id", op)
	}
	var rr reportRequest
	rr.Method = "flashCall"
	rr.FlashCall.CLI = cli
	body, err := json.Marshal(rr)
	if err != nil {
		return false, fmt.Errorf("sinch: encoding report: %w", err)
	}
	reply, err := delivery.DoHTTP(ctx, p.client, p.policy, delivery.RetryIdempotent, delivery.HTTPRequest{
		Provider: Name, Op: op, Method: http.MethodPut, URL: p.endpoint("/verification/v1/verifications/id/" + id),
		Body: body, Prepare: p.prepare,
	}, parseError)
	var pe *delivery.ProviderError
	if errors.As(err, &pe) && pe.Status == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rep reportReply
	if err := json.Unmarshal(reply.Body, &rep); err != nil {
		return false, delivery.Malformed(Name, op, reply.Status, err)
	}
	switch rep.Status {
	case StatusSuccessful:
		if rep.ID != "" && rep.ID != id {
			return false, delivery.Malformed(Name, op, reply.Status, fmt.Errorf("reply is about verification %q", rep.ID))
		}
		return true, nil
	case StatusFail, StatusDenied, StatusAborted, StatusPending:
		return false, nil
	case StatusError:
		e := delivery.Unavailable(Name, op, reply.Status, nil)
		e.Message = "status ERROR: " + rep.Reason
		return false, e
	default:
		return false, delivery.Malformed(Name, op, reply.Status, fmt.Errorf("unknown status %q", rep.Status))
	}
}
