package events

import "strings"

// ValidSubjectFilter checks a NATS subject filter as operators type one
// (refundctl replay --subject, the console's dead-letter filter):
// dot-separated non-empty tokens without whitespace, '*' only as a whole
// token, '>' only as the last, at most 256 bytes.
func ValidSubjectFilter(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			return false
		}
		if strings.Contains(t, ">") && (t != ">" || i != len(toks)-1) {
			return false
		}
		if strings.Contains(t, "*") && t != "*" {
			return false
		}
	}
	return true
}

// SubjectMatches reports whether subject matches a valid filter as the NATS
// server matches one: '*' is any one token, a final '>' one or more.
func SubjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) || (f != "*" && f != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
