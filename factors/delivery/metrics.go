package delivery

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcome label values of the send metrics.
const (
	OutcomeSuccess     = "success"
	OutcomeUnavailable = "unavailable"
	OutcomeRejected    = "rejected"
	OutcomeError       = "error"
	// OutcomeCooldown counts challenges answered with the delivery already
	// under way, sending nothing (a page refresh within the cool-down).
	OutcomeCooldown = "cooldown"
)

// Metrics counts provider calls; this file is the only place delivery
// metrics are defined. One Metrics serves every delivering factor: create
// it once per Registerer. Safe for concurrent use; a nil *Metrics records
// nothing.
type Metrics struct {
	sends    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the delivery metrics on reg (nil registers nothing
// but still counts).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "delivery", Name: "sends_total",
			Help: "Deliveries (flash calls, SMS, e-mails) by provider, channel and outcome; cooldown counts requests answered without sending.",
		}, []string{"provider", "channel", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "stepup", Subsystem: "delivery", Name: "provider_duration_seconds",
			Help:    "Time spent in provider calls, retries included, by provider and operation.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"provider", "op"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sends, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("delivery: registering metrics: %w", err)
		}
	}
	return m, nil
}

// Sent records one delivery attempt of provider on channel ending in err.
func (m *Metrics) Sent(provider, channel string, err error) {
	if m == nil {
		return
	}
	m.sends.WithLabelValues(provider, channel, OutcomeOf(err)).Inc()
}

// Suppressed records a challenge answered without sending (cool-down).
func (m *Metrics) Suppressed(provider, channel string) {
	if m == nil {
		return
	}
	m.sends.WithLabelValues(provider, channel, OutcomeCooldown).Inc()
}

// Observe records the duration of one provider operation since start.
func (m *Metrics) Observe(provider, op string, start time.Time, now time.Time) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(provider, op).Observe(now.Sub(start).Seconds())
}

// OutcomeOf maps a provider error to its outcome label.
func OutcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case errors.Is(err, ErrProviderUnavailable):
		return OutcomeUnavailable
	case errors.Is(err, ErrProviderRejected):
		return OutcomeRejected
	default:
		return OutcomeError
	}
}
