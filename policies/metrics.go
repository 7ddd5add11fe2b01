package policies

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the policy decisions and reloads, for Prometheus. Create one
// with NewMetrics and pass it to Config.Metrics and FileSourceOptions.Metrics.
// A nil *Metrics records nothing. Safe for concurrent use.
type Metrics struct {
	decisions   *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	lastSuccess prometheus.Gauge
	lastFailed  prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg:
//
//	stepup_policy_decisions_total{rule,outcome}       decisions; rule is the rule label, "default",
//	                                                   or "none" when no token got as far as a rule
//	stepup_policy_reloads_total{result}               reloads, result "success" or "failure"
//	stepup_policy_last_reload_success_timestamp_seconds
//	stepup_policy_last_reload_failed                  1 while the newest file is rejected (the old
//	                                                   policy is in force), else 0
//
// Outcomes: allow, insufficient_scope, insufficient_user_authentication,
// deny, missing_token, invalid_token, unavailable.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "policy", Name: "decisions_total",
			Help: "Authorization decisions by deciding rule and outcome.",
		}, []string{"rule", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "stepup", Subsystem: "policy", Name: "reloads_total",
			Help: "Policy file reloads by result; a failed reload keeps the previous policy.",
		}, []string{"result"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "stepup", Subsystem: "policy", Name: "last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful policy load.",
		}),
		lastFailed: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "stepup", Subsystem: "policy", Name: "last_reload_failed",
			Help: "1 if the last policy reload failed and the previous policy is still in force.",
		}),
	}
	for _, c := range []prometheus.Collector{m.decisions, m.reloads, m.lastSuccess, m.lastFailed} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("policies: registering metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) decision(rule, outcome string) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(rule, outcome).Inc()
}

func (m *Metrics) reload(err error, at time.Time) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		m.lastFailed.Set(1)
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastFailed.Set(0)
	m.lastSuccess.Set(float64(at.UnixNano()) / 1e9)
}
