package trigger

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/taxistream/taxistream/internal/local/bucket"
)

// The S3 event document, field for field and in S3's order. events.S3Event from aws-lambda-go decodes
// it, but is not used to encode it: it would add "urlDecodedKey" and an empty "versionId", which S3 does
// not send.
type s3Event struct {
	Records []s3Record `json:"Records"`
}

type s3Record struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      principal         `json:"userIdentity"`
	RequestParameters requestParameters `json:"requestParameters"`
	ResponseElements  responseElements  `json:"responseElements"`
	S3                s3Entity          `json:"s3"`
}

type principal struct {
	PrincipalID string `json:"principalId"`
}

type requestParameters struct {
	SourceIPAddress string `json:"sourceIPAddress"`
}

type responseElements struct {
	RequestID string `json:"x-amz-request-id"`
	ID2       string `json:"x-amz-id-2"`
}

type s3Entity struct {
	SchemaVersion   string   `json:"s3SchemaVersion"`
	ConfigurationID string   `json:"configurationId"`
	Bucket          s3Bucket `json:"bucket"`
	Object          s3Object `json:"object"`
}

type s3Bucket struct {
	Name          string    `json:"name"`
	OwnerIdentity principal `json:"ownerIdentity"`
	ARN           string    `json:"arn"`
}

type s3Object struct {
	Key       string `json:"key"`
	Size      int64  `json:"size"`
	ETag      string `json:"eTag"`
	VersionID string `json:"versionId,omitempty"` // only for versioned buckets
	Sequencer string `json:"sequencer"`
}

// Event returns the S3 event JSON for ev as delivered under the rule configurationID: one record,
// eventVersion 2.1, eventTime in UTC with milliseconds, the key form-encoded (EncodeKey), the ETag
// without quotes. The request ids are derived from the event, so the same event gives the same bytes.
func (t *Trigger) Event(configurationID string, ev bucket.ObjectCreated) ([]byte, error) {
	h := sha256.Sum256([]byte(ev.Bucket + "\x00" + ev.Key + "\x00" + ev.Sequencer))
	id2 := sha256.Sum256(h[:])
	doc := s3Event{Records: []s3Record{{
		EventVersion:      "2.1",
		EventSource:       "aws:s3",
		AWSRegion:         t.cfg.Region,
		EventTime:         ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"),
		EventName:         ev.EventName,
		UserIdentity:      principal{t.cfg.PrincipalID},
		RequestParameters: requestParameters{t.cfg.SourceIP},
		ResponseElements: responseElements{
			RequestID: strings.ToUpper(hex.EncodeToString(h[:8])),
			ID2:       base64.StdEncoding.EncodeToString(append(h[8:], id2[:]...))[:76],
		},
		S3: s3Entity{
			SchemaVersion:   "1.0",
			ConfigurationID: configurationID,
			Bucket:          s3Bucket{Name: ev.Bucket, OwnerIdentity: principal{t.cfg.OwnerID}, ARN: "arn:aws:s3:::" + ev.Bucket},
			Object: s3Object{
				Key:       EncodeKey(ev.Key),
				Size:      ev.Size,
				ETag:      strings.Trim(ev.ETag, `"`),
				VersionID: ev.VersionID,
				Sequencer: ev.Sequencer,
			},
		},
	}}}
	return json.Marshal(doc)
}

// EncodeKey encodes an object key the way S3 writes it into event notifications: form encoding
// (application/x-www-form-urlencoded, like Java's URLEncoder), so a space becomes '+' and '+' becomes
// %2B, with '/' left as is. Letters, digits and - _ . * are kept; every other byte of the UTF-8 key is
// %XX. url.QueryUnescape (events.S3Object.URLDecodedKey) reverses it.
func EncodeKey(key string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '*', c == '/':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
