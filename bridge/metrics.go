package bridge

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bridge's Prometheus collectors. They exist from New on
// and count whether or not they are registered; RegisterMetrics exposes
// them on a registry of the caller's choosing (there is no global one).
type metrics struct {
	latency *prometheus.HistogramVec
	dropped prometheus.Counter
	renewed prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "stepup_bridge",
			Subsystem: "keycloak",
			Name:      "request_duration_seconds",
			Help:      "Latency of bridge operations against Keycloak, by operation and outcome (ok, not_found, conflict, unavailable, forbidden, unauthorized, rejected, error).",
			Buckets:   []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "outcome"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stepup_bridge",
			Subsystem: "keycloak",
			Name:      "stepup_values_dropped_total",
			Help:      "Step-up attribute values found unparseable in Keycloak and removed on the next write (they would break every token request of the user).",
		}),
		renewed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "stepup_bridge",
			Subsystem: "keycloak",
			Name:      "admin_token_renewals_total",
			Help:      "Service-account token fetches (client credentials grant).",
		}),
	}
}

// RegisterMetrics registers the bridge's collectors on reg. Call it once
// per Bridge; a second call, or two bridges on one registry, fails with
// prometheus.AlreadyRegisteredError.
func (b *Bridge) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{b.metrics.latency, b.metrics.dropped, b.metrics.renewed} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// track starts timing op; call the result with the address of the
// operation's named error when it returns: defer b.track("op")(&err).
func (b *Bridge) track(op string) func(*error) {
	start := time.Now()
	return func(err *error) { b.metrics.observe(op, start, *err) }
}

// observe records one operation's latency and outcome.
func (m *metrics) observe(op string, start time.Time, err error) {
	m.latency.WithLabelValues(op, outcome(err)).Observe(time.Since(start).Seconds())
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, ErrConflict):
		return "conflict"
	case errors.Is(err, ErrUnavailable):
		return "unavailable"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, ErrUnauthorized):
		return "unauthorized"
	case errors.Is(err, ErrInvalidCredentials), errors.Is(err, ErrAccountDisabled), errors.Is(err, ErrAccountNotSetUp),
		errors.Is(err, ErrInvalidGrant), errors.Is(err, ErrBadRequest):
		return "rejected"
	default:
		return "error"
	}
}
