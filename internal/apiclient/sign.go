package apiclient

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/refundhub/refundhub/internal/platform"
)

// Header names of the platform's system parameters (reference §2.1). All of
// them travel as HTTP headers; only access-key, timestamp and nonce-str are
// signed.
const (
	HeaderAccessKey = "access-key"
	HeaderTimestamp = "timestamp"
	HeaderNonce     = "nonce-str"
	HeaderUserID    = "user-id"
	HeaderSignature = "signature"
)

// Sign computes the request signature the profile describes; by default
// reference §2.2's UPPER(HEX(MD5(accessKey + timestamp + nonce + secret))).
// The body, path, query and user-id are not signed, which is why the
// platform's timestamp window is the only replay protection.
func Sign(f platform.SignatureFacts, accessKey, timestamp, nonce, secret string) string {
	var b strings.Builder
	for _, part := range f.Parts {
		switch part {
		case platform.PartAccessKey:
			b.WriteString(accessKey)
		case platform.PartTimestamp:
			b.WriteString(timestamp)
		case platform.PartNonce:
			b.WriteString(nonce)
		case platform.PartSecret:
			b.WriteString(secret)
		}
	}
	sum := md5.Sum([]byte(b.String()))
	if f.LetterCase == "lower" {
		return hex.EncodeToString(sum[:])
	}
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

const nonceAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// NonceLength is the length of nonce-str the platform documents ("random string 32 bits").
const NonceLength = 32

// NewNonce returns NonceLength random alphanumerics drawn from crypto/rand
// without modulo bias.
func NewNonce() (string, error) {
	var b strings.Builder
	b.Grow(NonceLength)
	buf := make([]byte, 64)
	for b.Len() < NonceLength {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random nonce: %w", err)
		}
		for _, c := range buf {
			// 62*4 = 248: reject bytes >= 248 so every symbol is equally likely.
			if c >= 248 {
				continue
			}
			b.WriteByte(nonceAlphabet[int(c)%len(nonceAlphabet)])
			if b.Len() == NonceLength {
				break
			}
		}
	}
	return b.String(), nil
}
