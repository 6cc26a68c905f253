package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentbroker/agentbroker/catalog"
	"github.com/agentbroker/agentbroker/tokens"
)

// serve handles an authenticated request: every check, then the upstream call.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, rt route, start time.Time) {
	c, ok := tokens.ClaimsFrom(r.Context())
	if !ok {
		panic("proxy: no claims after the token middleware")
	}
	rec := UsageRecord{Session: c.Session, Project: c.Project, Agent: c.Agent, TokenID: c.ID,
		Route: rt.name, Endpoint: rt.endpoint, Start: start}

	body, err := p.readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			p.refuse(w, r, rt, &rec, apiError{status: http.StatusRequestEntityTooLarge, reason: ReasonTooLarge,
				message: fmt.Sprintf("agentbroker proxy: the request body is larger than %d bytes", p.maxBody)})
			return
		}
		// The client went away or sent a broken body: nobody to answer.
		rec.Outcome, rec.Reason, rec.Message = OutcomeClientGone, ReasonInvalidBody, "reading the request body: "+err.Error()
		p.finish(r.Context(), &rec)
		return
	}

	f, err := scanRequest(body)
	if pathModel, ok := r.Context().Value(pathModelKey{}).(string); ok {
		// The model is the path's; a body naming another is ambiguous.
		switch {
		case errors.Is(err, errNoModel):
			err = nil
		case err == nil && f.Model != pathModel:
			err = &fieldError{errAmbiguous, "model"}
		}
		f.Model = pathModel
	}
	rec.WireModel = cut(f.Model, 256)
	if err != nil {
		e := apiError{status: http.StatusBadRequest, reason: ReasonInvalidBody,
			code: "invalid_request_body", message: "agentbroker proxy: " + err.Error()}
		var fe *fieldError
		switch {
		case errors.Is(err, errNoModel):
			e.reason, e.code, e.param = ReasonNoModel, "missing_required_parameter", "model"
			e.message = "agentbroker proxy: model: field required"
		case errors.As(err, &fe):
			e.param = fe.field
		}
		p.refuse(w, r, rt, &rec, e)
		return
	}

	// A token naming its session's model is good for that model and the
	// agent's side models; one without keeps the agent's allowlist.
	res, err := p.catalog.ResolveSession(c.Agent, c.Model, f.Model)
	if err == nil {
		rec.Model, rec.Provider = res.Model.ID, res.Model.Provider
		err = res.CheckEndpoint(rt.endpoint)
	}
	if err != nil {
		p.refuse(w, r, rt, &rec, catalogRefusal(err, c.Agent, f.Model))
		return
	}
	if e, bad := unpriced(f); bad {
		p.refuse(w, r, rt, &rec, e)
		return
	}
	up, ok := p.upstreams[res.Model.Provider]
	if !ok {
		p.refuse(w, r, rt, &rec, apiError{status: http.StatusServiceUnavailable, reason: ReasonNoUpstream,
			message: fmt.Sprintf("agentbroker proxy: no upstream is configured for provider %q (model %q); ask the broker's operator",
				res.Model.Provider, res.Model.ID)})
		return
	}
	key := up.apiKey
	if p.userKey != nil {
		if k, ok := p.userKey(r.Context(), c, res.Model.Provider); ok && k != "" {
			if k, err = checkKey(k); err != nil {
				p.refuse(w, r, rt, &rec, apiError{status: http.StatusServiceUnavailable, reason: ReasonNoKey,
					message: fmt.Sprintf("agentbroker proxy: the session's own %s key is unusable: %v", res.Model.Provider, err)})
				return
			}
			key, rec.UserKey = k, true
		}
	}
	if key == "" {
		p.refuse(w, r, rt, &rec, apiError{status: http.StatusServiceUnavailable, reason: ReasonNoKey,
			message: fmt.Sprintf("agentbroker proxy: no key is configured for provider %q and the session has none of its own", res.Model.Provider)})
		return
	}
	if res.Deprecated {
		p.log.LogAttrs(r.Context(), slog.LevelInfo, "proxy: deprecated model", slog.String("session", c.Session),
			slog.String("model", res.Model.ID), slog.String("replacement", res.Replacement))
	}
	if !p.admit(w, r, rt, c, &rec) {
		return
	}
	p.forward(w, r, rt, up, key, body, f.Model, res.Model, &rec)
}

// readBody reads the whole body, at most p.maxBody bytes: the model must be
// known before the upstream call and may come last.
//
// A declared length over the limit is not refused before reading: the
// client, still writing, would see its connection reset instead of the
// 413. Reading stops one byte past the limit.
func (p *Proxy) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rd := http.MaxBytesReader(w, r.Body, p.maxBody)
	if r.ContentLength > 0 && r.ContentLength <= p.maxBody {
		buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength+1))
		_, err := buf.ReadFrom(rd)
		return buf.Bytes(), err
	}
	return io.ReadAll(rd)
}

// catalogRefusal maps a Resolve or CheckEndpoint error to the client's answer.
func catalogRefusal(err error, agent, model string) apiError {
	q := strconv.Quote(cut(model, 128))
	e := apiError{param: "model", message: "agentbroker proxy: " + strings.TrimPrefix(err.Error(), "catalog: ")}
	var retired *catalog.RetiredError
	switch {
	case errors.As(err, &retired):
		e.status, e.reason, e.code = http.StatusNotFound, ReasonRetired, "model_not_found"
		e.message = fmt.Sprintf("agentbroker proxy: model %s is retired; use %q", q, retired.Replacement)
	case errors.Is(err, catalog.ErrUnknownModel):
		e.status, e.reason, e.code = http.StatusNotFound, ReasonUnknownModel, "model_not_found"
		e.message = fmt.Sprintf("agentbroker proxy: model %s is not in the broker's model catalog", q)
	case errors.Is(err, catalog.ErrNotSessionModel):
		e.status, e.reason, e.code = http.StatusForbidden, ReasonNotSessionModel, "model_not_allowed"
		e.message = "agentbroker proxy: " + strings.TrimPrefix(err.Error(), "catalog: not the session's model: ") +
			"; start a session with that model to use it"
	case errors.Is(err, catalog.ErrModelNotAllowed):
		e.status, e.reason, e.code = http.StatusForbidden, ReasonNotAllowed, "model_not_allowed"
		e.message = fmt.Sprintf("agentbroker proxy: model %s is not allowed for agent %q; pick one of the models the broker offers for it", q, agent)
	case errors.Is(err, catalog.ErrUnknownAgent):
		e.status, e.reason, e.code, e.param = http.StatusForbidden, ReasonUnknownAgent, "unknown_agent", ""
		e.message = fmt.Sprintf("agentbroker proxy: the token's agent %q has no model policy in the catalog", cut(agent, 64))
	case errors.Is(err, catalog.ErrWrongEndpoint):
		e.status, e.reason, e.code = http.StatusBadRequest, ReasonWrongEndpoint, "unsupported_endpoint"
	default:
		e.status, e.reason, e.code = http.StatusBadRequest, ReasonInvalidBody, "invalid_model"
	}
	return e
}

// unpriced refuses the request options that change the price in ways the
// catalog does not model: Anthropic's fast mode (speed other than
// "standard") and priority or scale service tiers (the catalog notes
// require the proxy to refuse or price them).
func unpriced(f requestFields) (apiError, bool) {
	e := apiError{status: http.StatusBadRequest, reason: ReasonUnpricedOption, code: "unsupported_value"}
	switch {
	case f.Speed != "" && f.Speed != "standard":
		e.param = "speed"
		e.message = fmt.Sprintf("agentbroker proxy: speed %q is not available through the broker (the catalog does not price it); omit speed", cut(f.Speed, 64))
		return e, true
	case f.ServiceTier != "":
		switch f.ServiceTier {
		case "auto", "default", "standard_only", "flex":
			return apiError{}, false
		}
		e.param = "service_tier"
		e.message = fmt.Sprintf("agentbroker proxy: service_tier %q is not available through the broker (the catalog does not price it); use \"auto\" or omit it", cut(f.ServiceTier, 64))
		return e, true
	}
	return apiError{}, false
}

// refuse answers a refusal before any upstream call and records it.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, rt route, rec *UsageRecord, e apiError) {
	e.write(w, rt.adapter)
	rec.Status, rec.Outcome, rec.Reason, rec.Message = e.status, OutcomeRefused, e.reason, e.message
	p.finish(r.Context(), rec)
}

// Request headers never forwarded upstream: hop-by-hop headers (RFC 9110
// §7.6.1), the client's credentials (the inference token travels in
// Authorization or x-api-key), cookies, the client's choice of encoding
// (the transport negotiates its own and decodes, so the meter reads plain
// bytes), headers the transport sets itself, and the OpenAI headers that
// would pick an organization or project on the platform's account.
var dropRequest = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Te",
	"Trailer", "Transfer-Encoding", "Upgrade", "Expect",
	"Authorization", "X-Api-Key", "Cookie", "Accept-Encoding", "Content-Length", "Host",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"Openai-Organization", "Openai-Project",
}

// Response headers never passed back: hop-by-hop, and cookies.
var dropResponse = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Te", "Trailer",
	"Transfer-Encoding", "Upgrade", "Set-Cookie",
}

func copyHeader(dst, src http.Header, drop []string) {
	for k, vs := range src {
		dst[k] = append([]string(nil), vs...)
	}
	for _, f := range src.Values("Connection") {
		for name := range strings.SplitSeq(f, ",") {
			dst.Del(strings.TrimSpace(name))
		}
	}
	for _, k := range drop {
		dst.Del(k)
	}
}

// forward makes the upstream call and streams the answer back: every
// chunk read is written and flushed at once, then fed to the meter.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, rt route, up upstream, key string, body []byte, wireModel string, m *catalog.Model, rec *UsageRecord) {
	ctx := r.Context()
	target := *up.base
	target.Path += rt.apiPath(wireModel)
	target.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		panic("proxy: build upstream request: " + err.Error()) // the URL was validated by New
	}
	out.ContentLength = int64(len(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	copyHeader(out.Header, r.Header, dropRequest)
	for _, h := range rt.adapter.tokenHeaders {
		out.Header.Del(h)
	}
	rt.adapter.attachKey(out.Header, key)

	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		if ctx.Err() != nil {
			rec.Outcome, rec.Message = OutcomeClientGone, "the client went away before the upstream answered"
			p.finish(ctx, rec)
			return
		}
		e := apiError{status: http.StatusBadGateway, reason: ReasonUpstreamFailed, retry: true,
			message: fmt.Sprintf("agentbroker proxy: the %s upstream is unreachable (%s)", m.Provider, briefError(err))}
		var to interface{ Timeout() bool }
		if errors.As(err, &to) && to.Timeout() {
			e.status, e.reason = http.StatusGatewayTimeout, ReasonUpstreamTimeout
			e.message = fmt.Sprintf("agentbroker proxy: the %s upstream sent no response headers in time", m.Provider)
		}
		p.log.LogAttrs(ctx, slog.LevelWarn, "proxy: upstream request failed", slog.String("provider", string(m.Provider)),
			slog.String("session", rec.Session), slog.String("error", err.Error()))
		e.write(w, rt.adapter)
		rec.Status, rec.Outcome, rec.Reason, rec.Message = e.status, OutcomeUnreachable, e.reason, e.message
		p.finish(ctx, rec)
		return
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusUnauthorized && !rec.UserKey {
		// The platform's key was refused: the client can do nothing about
		// it, and the upstream's message may quote part of the key.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		e := apiError{status: http.StatusBadGateway, reason: ReasonUpstreamAuth,
			message: fmt.Sprintf("agentbroker proxy: the %s upstream refused the broker's key; ask the broker's operator", m.Provider)}
		p.log.LogAttrs(ctx, slog.LevelError, "proxy: upstream refused the platform key", slog.String("provider", string(m.Provider)))
		e.write(w, rt.adapter)
		rec.Status, rec.Outcome, rec.Reason, rec.Message = e.status, OutcomeUpstreamError, e.reason, e.message
		p.finish(ctx, rec)
		return
	}

	copyHeader(w.Header(), resp.Header, dropResponse)
	w.WriteHeader(resp.StatusCode)
	rec.Status = resp.StatusCode
	rc := http.NewResponseController(w)
	sse := strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/event-stream")
	if sse {
		_ = rc.Flush() // the status line now: the client knows the stream started
	}
	var mt *meter
	if resp.StatusCode/100 == 2 && rt.metered {
		mt = newMeter(rt, sse)
	}

	bp := p.bufs.Get().(*[]byte)
	defer p.bufs.Put(bp)
	buf := *bp
	var upstreamErr error
	clientGone := false
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			_, werr := w.Write(buf[:n])
			if werr == nil {
				if werr = rc.Flush(); errors.Is(werr, http.ErrNotSupported) {
					werr = nil // a writer that cannot flush: the bytes still go out
				}
			}
			if werr != nil {
				clientGone = true
				break
			}
			if rec.TTFB == 0 {
				rec.TTFB = time.Since(rec.Start)
				p.m.ttfb.With(string(m.Provider)).Observe(rec.TTFB.Seconds())
			}
			if mt != nil {
				mt.Write(buf[:n])
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				clientGone = true
			} else {
				upstreamErr = rerr
			}
			break
		}
	}

	abort := false
	if (clientGone || upstreamErr != nil) && sse && mt != nil && mt.complete {
		// The answer's last event went through: whoever hung up after it
		// (Codex closes as soon as it reads response.completed), the
		// client has the whole answer.
		clientGone, upstreamErr = false, nil
	}
	switch {
	case clientGone:
		rec.Outcome, rec.Message = OutcomeClientGone, "the client went away mid-answer; the upstream request was cancelled"
	case upstreamErr != nil:
		rec.Outcome, rec.Reason = OutcomeTruncated, ReasonUpstreamTruncated
		rec.Message = fmt.Sprintf("agentbroker proxy: the %s upstream broke off the answer (%s)", m.Provider, briefError(upstreamErr))
		p.log.LogAttrs(ctx, slog.LevelWarn, "proxy: upstream broke off", slog.String("provider", string(m.Provider)),
			slog.String("session", rec.Session), slog.String("error", upstreamErr.Error()))
		if sse && (mt == nil || mt.atBoundary()) {
			// Between two events: end the stream with an error event the
			// client's SDK reports.
			id := ""
			if mt != nil {
				id = mt.responseID()
			}
			if _, err := w.Write(rt.adapter.streamError(rt, id, rec.Message)); err == nil {
				_ = rc.Flush()
			}
		} else {
			// Mid-event or mid-JSON: only a broken connection tells the
			// client the answer is incomplete.
			abort = true
		}
	case resp.StatusCode/100 == 2:
		rec.Outcome = OutcomeOK
	default:
		rec.Outcome = OutcomeUpstreamError
	}
	if mt != nil {
		mt.finish()
		rec.Usage, rec.UsageReported = mt.usage()
		if rec.UsageReported {
			cost, err := catalog.Cost(m, rec.Usage)
			if err != nil {
				p.log.LogAttrs(ctx, slog.LevelWarn, "proxy: cannot price usage", slog.String("model", m.ID), slog.String("error", err.Error()))
			}
			rec.Cost = cost
		}
	}
	p.finish(ctx, rec)
	if abort {
		panic(http.ErrAbortHandler)
	}
}

// briefError names a transport error's cause without URLs.
func briefError(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected EOF"
	case errors.Is(err, io.EOF):
		return "connection closed"
	}
	return "request failed"
}

// finish records the request: metrics, the Recorder, a log line.
func (p *Proxy) finish(ctx context.Context, rec *UsageRecord) {
	rec.Duration = time.Since(rec.Start)
	if rec.Outcome == OutcomeRefused {
		p.m.refusals.With(string(rec.Reason)).Inc()
		p.log.LogAttrs(ctx, slog.LevelInfo, "proxy refused a request", slog.String("route", string(rec.Route)),
			slog.String("session", rec.Session), slog.String("agent", rec.Agent), slog.String("model", cut(rec.WireModel, 128)),
			slog.String("reason", string(rec.Reason)), slog.Int("status", rec.Status), slog.String("message", rec.Message))
	} else {
		p.m.record(rec)
		p.log.LogAttrs(ctx, slog.LevelDebug, "proxy request", slog.String("route", string(rec.Route)),
			slog.String("session", rec.Session), slog.String("agent", rec.Agent), slog.String("model", rec.Model),
			slog.Int("status", rec.Status), slog.String("outcome", string(rec.Outcome)),
			slog.Int64("input_tokens", rec.Usage.InputTokens), slog.Int64("output_tokens", rec.Usage.OutputTokens),
			slog.String("cost", rec.Cost.String()), slog.Duration("ttfb", rec.TTFB), slog.Duration("duration", rec.Duration))
	}
	if p.recorder != nil {
		p.recorder.RecordUsage(context.WithoutCancel(ctx), *rec)
	}
}
