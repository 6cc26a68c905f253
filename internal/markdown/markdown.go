// Package markdown turns the Markdown that agents answer in into HTML that
// is safe to put in the console's page.
//
// Two well-kept libraries do the work, each doing what it is good at:
// goldmark parses CommonMark with the GitHub extensions (tables,
// strikethrough, autolinks) and is told to drop raw HTML and
// dangerous link schemes; bluemonday then keeps only an allowlist of
// elements and attributes, so that whatever goldmark lets through (or a
// future goldmark bug) cannot become script, a form, a frame, an image
// fetched from elsewhere or a style. The console's Content-Security-Policy
// (no inline script, nothing from other origins) is the third line.
//
// The rendering is on the server, in Go, rather than in vendored
// JavaScript: the libraries come through the Go module proxy with go.sum
// checking them, are fuzzed here with the rest of the broker's parsers,
// and the console stays a few hand-written modules with nothing to build.
package markdown

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
)

// MaxSource bounds one text to render; Render renders a longer one's first
// MaxSource bytes (cut at a character boundary).
const MaxSource = 256 << 10

// Renderer renders Markdown to sanitized HTML. Its zero value is not
// usable: call New. It is safe for concurrent use.
type Renderer struct {
	md     goldmark.Markdown
	policy *bluemonday.Policy
}

// New returns a Renderer.
func New() *Renderer {
	md := goldmark.New(
		goldmark.WithExtensions(extension.Table, extension.Strikethrough, extension.Linkify),
		// Not html.WithUnsafe: raw HTML and javascript: links are dropped.
		goldmark.WithRendererOptions(html.WithHardWraps()),
	)
	return &Renderer{md: md, policy: policy()}
}

// policy is what survives: text structure, code, links to http(s) and
// mailto (opened in a new tab, without a referrer or an opener) and
// tables. No images (the console loads
// nothing from elsewhere), no style, no classes but code's language.
func policy() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowElements("p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "code", "pre",
		"blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a")
	p.AllowAttrs("start").Matching(bluemonday.Integer).OnElements("ol")
	p.AllowAttrs("class").Matching(bluemonday.SpaceSeparatedTokens).OnElements("code")
	p.AllowAttrs("href").OnElements("a")
	p.AllowURLSchemes("http", "https", "mailto")
	p.RequireParseableURLs(true)
	p.AllowRelativeURLs(false)
	p.RequireNoFollowOnLinks(true)
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
}

// Render returns src as sanitized HTML.
func (r *Renderer) Render(src string) string {
	if len(src) > MaxSource {
		src = src[:MaxSource]
		for !utf8.ValidString(src) {
			src = src[:len(src)-1]
		}
	}
	var buf bytes.Buffer
	if err := r.md.Convert([]byte(src), &buf); err != nil {
		// goldmark fails only on a failing writer; a bytes.Buffer does not.
		return r.policy.Sanitize("<p>" + strings.ReplaceAll(src, "<", "&lt;") + "</p>")
	}
	return r.policy.SanitizeReader(&buf).String()
}
