package sipua

// reasonPhrases are the RFC 3261 reason phrases of the final responses a phone is
// likely to send; others get a generic phrase for their class.
var reasonPhrases = map[int]string{
	400: "Bad Request",
	401: "Unauthorized",
	403: "Forbidden",
	404: "Not Found",
	407: "Proxy Authentication Required",
	408: "Request Timeout",
	410: "Gone",
	480: "Temporarily Unavailable",
	484: "Address Incomplete",
	486: "Busy Here",
	487: "Request Terminated",
	488: "Not Acceptable Here",
	500: "Server Internal Error",
	503: "Service Unavailable",
	600: "Busy Everywhere",
	603: "Decline",
	604: "Does Not Exist Anywhere",
}

// ReasonPhrase returns the usual reason phrase for a SIP status code.
func ReasonPhrase(code int) string {
	if r, ok := reasonPhrases[code]; ok {
		return r
	}
	switch {
	case code >= 600:
		return "Global Failure"
	case code >= 500:
		return "Server Failure"
	case code >= 400:
		return "Request Failure"
	}
	return "Status"
}
