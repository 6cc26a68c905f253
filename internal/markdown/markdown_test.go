package markdown

import (
	"golang.org/x/net/html"
	"regexp"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	t.Parallel()
	r := New()
	for _, c := range []struct{ in, want string }{
		{"# Heading\n\nSome **bold** and `code`.", "<h1>Heading</h1>\n<p>Some <strong>bold</strong> and <code>code</code>.</p>\n"},
		{"- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"},
		{"```go\nx := 1\n```", "<pre><code class=\"language-go\">x := 1\n</code></pre>\n"},
		{"[docs](https://example.com/a)", `<p><a href="https://example.com/a" rel="nofollow noreferrer noopener" target="_blank">docs</a></p>` + "\n"},
		{"| a | b |\n|---|---|\n| 1 | 2 |", "<table>\n<thead>\n<tr>\n<th>a</th>\n<th>b</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>1</td>\n<td>2</td>\n</tr>\n</tbody>\n</table>\n"},
		{"~~gone~~", "<p><del>gone</del></p>\n"},
	} {
		if got := r.Render(c.in); got != c.want {
			t.Errorf("Render(%q) =\n%q\nwant\n%q", c.in, got, c.want)
		}
	}
}

// XSS is a corpus of markup that must come out inert; the browser test
// sends the same kind of text through a real agent.
var XSS = []string{
	`<script>alert(1)</script>`,
	`<img src=x onerror=alert(1)>`,
	`<svg onload=alert(1)>`,
	`<iframe src="javascript:alert(1)"></iframe>`,
	`[click](javascript:alert(1))`,
	`[click](JaVaScRiPt:alert(1))`,
	`[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)`,
	`[click](vbscript:msgbox(1))`,
	`<a href="javascript:alert(1)">x</a>`,
	`![x](https://example.com/x.png)`,
	`<details open ontoggle=alert(1)>`,
	`<form action="https://example.com"><button>go</button></form>`,
	`<style>body{display:none}</style>`,
	"`<script>alert(1)</script>`",
	`<p style="background:url(javascript:alert(1))">x</p>`,
	`<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>`,
	"<a href=\"https://example.com\" onclick=\"alert(1)\">x</a>",
	`[x](https://example.com "title\" onmouseover=\"alert(1)")`,
	"<object data=x></object><embed src=x>",
	"<base href=\"https://evil.example/\">",
	"<meta http-equiv=refresh content=0;url=https://evil.example>",
	"<input autofocus onfocus=alert(1)>",
}

var unsafe = regexp.MustCompile(`(?i)<\s*(script|img|svg|iframe|style|form|button|object|embed|base|meta|details|math|link|frame)\b|\son[a-z]+\s*=|javascript:|vbscript:|data:|\sstyle\s*=`)

func TestRenderXSS(t *testing.T) {
	t.Parallel()
	r := New()
	for _, in := range XSS {
		if got := r.Render(in); unsafe.MatchString(got) || inert(got) != "" {
			t.Errorf("Render(%q) = %q: not inert", in, got)
		}
	}
	// Markup in inline code stays visible, as text.
	if got := r.Render("`<b>x</b>`"); got != "<p><code>&lt;b&gt;x&lt;/b&gt;</code></p>\n" {
		t.Errorf("inline code with markup = %q", got)
	}
}

func TestRenderTooLong(t *testing.T) {
	t.Parallel()
	src := strings.Repeat("é", MaxSource) // 2 bytes each
	got := New().Render(src)
	if n := strings.Count(got, "é"); n != MaxSource/2 {
		t.Fatalf("rendered %d characters of a %d-byte text; want the first %d bytes", n, len(src), MaxSource)
	}
}

// inert checks rendered HTML with an HTML tokenizer: only allowed
// elements, only allowed attributes, links only to http(s) and mailto.
func inert(out string) string {
	allowed := map[string]bool{}
	for _, e := range strings.Fields("p br hr h1 h2 h3 h4 h5 h6 strong em del code pre blockquote ul ol li table thead tbody tr th td a") {
		allowed[e] = true
	}
	z := html.NewTokenizer(strings.NewReader(out))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return ""
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if !allowed[tok.Data] {
				return "element " + tok.Data
			}
			for _, a := range tok.Attr {
				switch {
				case a.Key == "href" && tok.Data == "a":
					l := strings.ToLower(a.Val)
					if !strings.HasPrefix(l, "http:") && !strings.HasPrefix(l, "https:") && !strings.HasPrefix(l, "mailto:") {
						return "href " + a.Val
					}
				case a.Key == "rel" || a.Key == "target" && a.Val == "_blank" || a.Key == "start" && tok.Data == "ol" ||
					a.Key == "class" && tok.Data == "code":
				default:
					return "attribute " + a.Key + " on " + tok.Data
				}
			}
		}
	}
}

func FuzzRender(f *testing.F) {
	for _, s := range XSS {
		f.Add(s)
	}
	f.Add("# h\n\n**b** `c` [l](https://x)\n\n```\ncode\n```\n| a |\n|---|\n| 1 |\n- [x] done")
	r := New()
	f.Fuzz(func(t *testing.T, src string) {
		out := r.Render(src)
		if why := inert(out); why != "" {
			t.Fatalf("Render(%q) = %q: %s", src, out, why)
		}
	})
}
