package proxy

import (
	"github.com/agentbroker/agentbroker/internal/metrics"
)

// meters are the proxy's series. Every label value is bounded: models are
// canonical catalog IDs, never what a client sent.
type meters struct {
	requests *metrics.CounterVec
	tokens   *metrics.CounterVec
	cost     *metrics.CounterVec
	costUSD  *metrics.ScaledCounterVec
	refusals *metrics.CounterVec
	ttfb     *metrics.HistogramVec
}

func newMeters(reg *metrics.Registry) *meters {
	return &meters{
		requests: reg.NewCounterVec("agentbroker_proxy_requests_total",
			"Model requests the proxy forwarded upstream, by provider, canonical model and outcome (ok, upstream_error, unreachable, truncated, client_gone).",
			"provider", "model", "outcome"),
		tokens: reg.NewCounterVec("agentbroker_proxy_tokens_total",
			"Tokens the upstreams reported, by canonical model and kind (input, output, cache_read, cache_write_5m, cache_write_1h; input excludes cache).",
			"model", "kind"),
		cost: reg.NewCounterVec("agentbroker_proxy_cost_picousd_total",
			"Cost of the reported usage at catalog prices, in pico-USD (1e-12 USD), by canonical model.",
			"model"),
		costUSD: reg.NewScaledCounterVec("agentbroker_proxy_cost_usd_total",
			"Cost of the reported usage at catalog prices, in USD, by provider and canonical model (summed exactly in pico-USD, written as a float).",
			1_000_000_000_000, "provider", "model"),
		refusals: reg.NewCounterVec("agentbroker_proxy_refusals_total",
			"Requests the proxy refused before any upstream call, by reason.",
			"reason"),
		ttfb: reg.NewHistogramVec("agentbroker_proxy_time_to_first_byte_seconds",
			"Time from a request reaching the proxy to the first response body byte sent to the client, by provider.",
			nil, "provider"),
	}
}

// record counts a request that went upstream (or tried to).
func (m *meters) record(rec *UsageRecord) {
	provider, model := string(rec.Provider), rec.Model
	if model == "" {
		provider, model = "none", "none"
	}
	m.requests.With(provider, model, string(rec.Outcome)).Inc()
	if !rec.UsageReported {
		return
	}
	u := rec.Usage
	for _, k := range []struct {
		kind string
		n    int64
	}{
		{"input", u.InputTokens}, {"output", u.OutputTokens}, {"cache_read", u.CacheReadTokens},
		{"cache_write_5m", u.CacheWrite5mTokens}, {"cache_write_1h", u.CacheWrite1hTokens},
	} {
		if k.n > 0 {
			m.tokens.With(model, k.kind).Add(uint64(k.n))
		}
	}
	if rec.Cost > 0 {
		m.cost.With(model).Add(uint64(rec.Cost))
		m.costUSD.With(provider, model).Add(uint64(rec.Cost))
	}
}
