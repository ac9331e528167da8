package firehose

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// ErrorOutputTypeProcessingFailed is the !{firehose:error-output-type} of records Firehose could not
// process; a corrupt KPL aggregate is one.
const ErrorOutputTypeProcessingFailed = "processing-failed"

// defaultPrefix is what Firehose uses when Prefix is empty: YYYY/MM/dd/HH/ in UTC.
const defaultPrefix = "!{timestamp:yyyy/MM/dd/HH}/"

// defaultErrorPrefix is the ErrorOutputPrefix used when it is empty.
const defaultErrorPrefix = "!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd/HH}/"

// prefix is a compiled S3 prefix with !{namespace:value} expressions.
type prefix struct {
	parts       []prefixPart
	expressions bool
}

type prefixPart struct {
	literal string
	kind    string // "", "timestamp", "random", "error-type"
	layout  []dtToken
}

// compilePrefix parses p. errorPrefix says whether !{firehose:error-output-type} is allowed.
func compilePrefix(p string, errorPrefix bool) (prefix, error) {
	var out prefix
	for {
		i := strings.Index(p, "!{")
		if i < 0 {
			if p != "" {
				out.parts = append(out.parts, prefixPart{literal: p})
			}
			return out, nil
		}
		if i > 0 {
			out.parts = append(out.parts, prefixPart{literal: p[:i]})
		}
		j := strings.Index(p[i:], "}")
		if j < 0 {
			return out, fmt.Errorf("unterminated expression in prefix at %q", p[i:])
		}
		expr := p[i+2 : i+j]
		p = p[i+j+1:]
		out.expressions = true
		ns, val, ok := strings.Cut(expr, ":")
		switch {
		case !ok:
			return out, fmt.Errorf("expression !{%s}: want !{namespace:value}", expr)
		case ns == "timestamp":
			layout, err := compileDateTimeFormat(val)
			if err != nil {
				return out, fmt.Errorf("expression !{%s}: %w", expr, err)
			}
			out.parts = append(out.parts, prefixPart{kind: "timestamp", layout: layout})
		case ns == "firehose" && val == "random-string":
			out.parts = append(out.parts, prefixPart{kind: "random"})
		case ns == "firehose" && val == "error-output-type":
			if !errorPrefix {
				return out, fmt.Errorf("expression !{%s} is only allowed in ErrorOutputPrefix", expr)
			}
			out.parts = append(out.parts, prefixPart{kind: "error-type"})
		default:
			return out, fmt.Errorf("expression !{%s} is not supported (timestamp:<pattern>, firehose:random-string, firehose:error-output-type)", expr)
		}
	}
}

// eval evaluates the prefix for an object whose oldest record arrived at ts (UTC).
func (p prefix) eval(ts time.Time, errorType string) string {
	var b strings.Builder
	for _, part := range p.parts {
		switch part.kind {
		case "":
			b.WriteString(part.literal)
		case "timestamp":
			formatDateTime(&b, part.layout, ts.UTC())
		case "random":
			b.WriteString(randomString(11))
		case "error-type":
			b.WriteString(errorType)
		}
	}
	return b.String()
}

const alphanum = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// randomString returns n random alphanumeric characters, like !{firehose:random-string} (11 of them).
func randomString(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphanum[rand.IntN(len(alphanum))]
	}
	return string(b)
}

// dtToken is one element of a Java DateTimeFormatter pattern: a field letter repeated count times, or a
// literal.
type dtToken struct {
	letter  byte
	count   int
	literal string
}

// compileDateTimeFormat parses the subset of java.time.format.DateTimeFormatter patterns that Firehose
// prefixes use: y/u (year), M (month), d (day), H (hour 0-23), m (minute), s (second), quoted 'text'
// (” is a quote) and any non-letter as a literal.
func compileDateTimeFormat(p string) ([]dtToken, error) {
	var out []dtToken
	for i := 0; i < len(p); {
		c := p[i]
		switch {
		case c == '\'':
			j := i + 1
			var lit strings.Builder
			for {
				if j >= len(p) {
					return nil, fmt.Errorf("pattern %q: unterminated quote", p)
				}
				if p[j] == '\'' {
					if j+1 < len(p) && p[j+1] == '\'' {
						lit.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				lit.WriteByte(p[j])
				j++
			}
			if j == i+1 {
				lit.WriteByte('\'') // '' outside a quoted text
			}
			out = append(out, dtToken{literal: lit.String()})
			i = j + 1
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(p) && p[j] == c {
				j++
			}
			n := j - i
			switch c {
			case 'y', 'u', 'M', 'd', 'H', 'm', 's':
			default:
				return nil, fmt.Errorf("pattern %q: letter %q is not supported (y, u, M, d, H, m, s)", p, c)
			}
			if c != 'y' && c != 'u' && c != 'M' && n > 2 {
				return nil, fmt.Errorf("pattern %q: too many pattern letters %q", p, p[i:j])
			}
			out = append(out, dtToken{letter: c, count: n})
			i = j
		default:
			out = append(out, dtToken{literal: string(c)})
			i++
		}
	}
	return out, nil
}

func formatDateTime(b *strings.Builder, tokens []dtToken, t time.Time) {
	num := func(v, n int) { fmt.Fprintf(b, "%0*d", n, v) }
	for _, tk := range tokens {
		switch tk.letter {
		case 0:
			b.WriteString(tk.literal)
		case 'y', 'u':
			if tk.count == 2 {
				num(t.Year()%100, 2)
			} else {
				num(t.Year(), tk.count)
			}
		case 'M':
			switch tk.count {
			case 3:
				b.WriteString(t.Month().String()[:3])
			case 4:
				b.WriteString(t.Month().String())
			default:
				if tk.count > 4 {
					b.WriteString(t.Month().String()[:1])
				} else {
					num(int(t.Month()), tk.count)
				}
			}
		case 'd':
			num(t.Day(), tk.count)
		case 'H':
			num(t.Hour(), tk.count)
		case 'm':
			num(t.Minute(), tk.count)
		case 's':
			num(t.Second(), tk.count)
		}
	}
}
