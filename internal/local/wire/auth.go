package wire

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Signature Version 4, as far as the local cloud checks it: the shape of the Authorization header (or
// of a presigned URL's query) and the request time. The access key and the signature itself are not
// verified: any credentials are accepted, as the local cloud has no IAM.
const (
	sigV4Algorithm  = "AWS4-HMAC-SHA256"
	sigV4aAlgorithm = "AWS4-ECDSA-P256-SHA256"
	amzDateFormat   = "20060102T150405Z"
	// maxSkew is how far a signed request's time may be from the server's, as on AWS.
	maxSkew = 15 * time.Minute
	// maxPresignExpiry is the longest X-Amz-Expires SigV4 allows (7 days).
	maxPresignExpiry = 7 * 24 * time.Hour
)

// credential is what a signature says about the request.
type credential struct {
	accessKey, date, region, service string
	v2                               bool // S3's legacy Signature Version 2 (header or presigned query)
}

// authKind classifies what is wrong with a request's authentication.
type authKind int

const (
	authMissing     authKind = iota + 1 // no Authorization header and no presigned query
	authUnsupported                     // another scheme (SigV2, Basic, ...)
	authMalformed                       // SigV4 with missing or malformed parts
	authNoDate                          // no X-Amz-Date or Date
	authSkewed                          // request time too far from the server's
	authExpired                         // presigned URL past its expiry
)

// authError is an authentication problem; the S3 and Kinesis handlers each shape it their way.
type authError struct {
	kind authKind
	msg  string
}

func (e *authError) Error() string { return e.msg }

var (
	hex64        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	hexSignature = regexp.MustCompile(`^[0-9a-f]+$`)
)

// parseAuth checks the shape of a request's SigV4 authentication and returns its credential scope.
// The credential is filled in as far as it could be parsed, even with an error.
func parseAuth(r *http.Request, now time.Time) (credential, *authError) {
	q := r.URL.Query()
	if alg := q.Get("X-Amz-Algorithm"); alg != "" {
		return parsePresigned(q, alg, now)
	}
	if q.Has("AWSAccessKeyId") || q.Has("Signature") {
		return parsePresignedV2(q, now)
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return credential{}, &authError{authMissing, "the request is not signed: no Authorization header and no X-Amz-Signature query parameter"}
	}
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg == "AWS" {
		// S3's Signature Version 2 ("AWS AKID:signature"), which S3 still accepts in us-east-1.
		key, sig, ok := strings.Cut(rest, ":")
		if !ok || key == "" || sig == "" {
			return credential{v2: true, service: "s3"}, &authError{authMalformed, "The authorization header is malformed; expecting \"AWS <access key>:<signature>\"."}
		}
		return credential{accessKey: key, service: "s3", v2: true}, nil
	}
	if alg != sigV4Algorithm && alg != sigV4aAlgorithm {
		return credential{}, &authError{authUnsupported, "The authorization mechanism you have provided is not supported. Please use " + sigV4Algorithm + "."}
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		fields[k] = v
	}
	cred, err := parseScope(alg, fields["Credential"])
	if err != nil {
		return cred, err
	}
	if fields["SignedHeaders"] == "" {
		return cred, &authError{authMalformed, "Authorization header requires 'SignedHeaders' parameter."}
	}
	if sig := fields["Signature"]; sig == "" || !hexSignature.MatchString(sig) || (alg == sigV4Algorithm && !hex64.MatchString(sig)) {
		return cred, &authError{authMalformed, "Authorization header requires a 'Signature' parameter of hexadecimal digits."}
	}
	var at time.Time
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, perr := time.Parse(amzDateFormat, d)
		if perr != nil {
			return cred, &authError{authMalformed, fmt.Sprintf("X-Amz-Date %q is not in the ISO 8601 basic format yyyyMMddTHHmmssZ.", d)}
		}
		at = t
	} else if d := r.Header.Get("Date"); d != "" {
		t, perr := http.ParseTime(d)
		if perr != nil {
			return cred, &authError{authNoDate, "AWS authentication requires a valid Date or x-amz-date header"}
		}
		at = t
	} else {
		return cred, &authError{authNoDate, "AWS authentication requires a valid Date or x-amz-date header"}
	}
	if d := now.Sub(at); d > maxSkew || d < -maxSkew {
		return cred, &authError{authSkewed, fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.) or later than %s (%s + 15 min.)",
			at.UTC().Format(amzDateFormat), now.Add(-maxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat),
			now.Add(maxSkew).UTC().Format(amzDateFormat), now.UTC().Format(amzDateFormat))}
	}
	return cred, nil
}

// parseScope parses "AKID/20240101/us-east-1/s3/aws4_request" (SigV4a has no region).
func parseScope(alg, scope string) (credential, *authError) {
	if scope == "" {
		return credential{}, &authError{authMalformed, "Authorization header requires 'Credential' parameter."}
	}
	p := strings.Split(scope, "/")
	var c credential
	switch {
	case alg == sigV4Algorithm && len(p) == 5:
		c = credential{accessKey: p[0], date: p[1], region: p[2], service: p[3]}
	case alg == sigV4aAlgorithm && len(p) == 4:
		c = credential{accessKey: p[0], date: p[1], service: p[2]}
	default:
		return credential{}, &authError{authMalformed, fmt.Sprintf("The authorization header is malformed; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\": %q.", scope)}
	}
	if c.accessKey == "" || len(c.date) != 8 || p[len(p)-1] != "aws4_request" || c.service == "" {
		return c, &authError{authMalformed, fmt.Sprintf("The authorization header is malformed; the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\": %q.", scope)}
	}
	if _, err := time.Parse("20060102", c.date); err != nil {
		return c, &authError{authMalformed, fmt.Sprintf("The authorization header is malformed; the Credential date %q is not YYYYMMDD.", c.date)}
	}
	return c, nil
}

// parsePresigned checks a presigned URL's query: X-Amz-Credential, X-Amz-Date, X-Amz-Expires,
// X-Amz-SignedHeaders and X-Amz-Signature, and that it has not expired.
func parsePresigned(q map[string][]string, alg string, now time.Time) (credential, *authError) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if alg != sigV4Algorithm && alg != sigV4aAlgorithm {
		return credential{}, &authError{authUnsupported, "X-Amz-Algorithm only supports \"" + sigV4Algorithm + "\"."}
	}
	cred, err := parseScope(alg, get("X-Amz-Credential"))
	if err != nil {
		return cred, err
	}
	if get("X-Amz-Signature") == "" || get("X-Amz-SignedHeaders") == "" {
		return cred, &authError{authMalformed, "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters."}
	}
	at, perr := time.Parse(amzDateFormat, get("X-Amz-Date"))
	if perr != nil {
		return cred, &authError{authMalformed, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"."}
	}
	secs, perr := strconv.Atoi(get("X-Amz-Expires"))
	if perr != nil || secs < 0 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return cred, &authError{authMalformed, "X-Amz-Expires must be a number of seconds between 0 and 604800."}
	}
	if now.After(at.Add(time.Duration(secs) * time.Second)) {
		return cred, &authError{authExpired, "Request has expired"}
	}
	if at.After(now.Add(maxSkew)) {
		return cred, &authError{authSkewed, "Request is not valid yet"}
	}
	return cred, nil
}

// parsePresignedV2 checks a Signature Version 2 presigned URL (AWSAccessKeyId, Signature, Expires in
// epoch seconds), which boto3 and the AWS CLI v1 still generate for S3 by default.
func parsePresignedV2(q map[string][]string, now time.Time) (credential, *authError) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	cred := credential{accessKey: get("AWSAccessKeyId"), service: "s3", v2: true}
	if cred.accessKey == "" || get("Signature") == "" || get("Expires") == "" {
		return cred, &authError{authMalformed, "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters"}
	}
	exp, err := strconv.ParseInt(get("Expires"), 10, 64)
	if err != nil {
		return cred, &authError{authMalformed, "Expires must be a number of seconds since the epoch"}
	}
	if now.After(time.Unix(exp, 0)) {
		return cred, &authError{authExpired, "Request has expired"}
	}
	return cred, nil
}
