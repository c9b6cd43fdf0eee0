package wire

import "strconv"

// Reply kinds and subkinds of PROTOCOL.md section 3.
const (
	KindResp   = "resp"
	KindLookup = "lookup"
	KindRing   = "ring"
	KindCall   = "call"

	SubLogin        = "login"        // resp|login|<sessionid>
	SubExists       = "exists"       // lookup|<who>|exists
	SubDoesntExist  = "doesntexist"  // lookup|<who>|doesntexist
	SubAvailable    = "available"    // ring|available|<callee>
	SubIncoming     = "incoming"     // ring|incoming|<caller>
	SubNotAvailable = "notavailable" // ring|notavailable|<callee>
	SubBusy         = "busy"         // ring|busy|<callee>
	SubTimeout      = "timeout"      // ring|timeout|<caller>
	SubStart        = "start"        // call|start|<peer>
	SubReject       = "reject"       // call|reject|<callee>
	SubEnd          = "end"          // call|end|<who ended>
	SubDrop         = "drop"         // call|drop|<own sessionid>
)

// Reply formats servertime|kind|sub|value. The message has no terminator:
// on the legacy front it is written as one TLS record.
func Reply(now int64, kind, sub, value string) []byte {
	b := make([]byte, 0, 24+len(kind)+len(sub)+len(value))
	b = strconv.AppendInt(b, now, 10)
	b = append(b, '|')
	b = append(b, kind...)
	b = append(b, '|')
	b = append(b, sub...)
	b = append(b, '|')
	return append(b, value...)
}

// InvalidReply formats the refusal "servertime|resp|invalid|command\n", the
// only message that ends with a newline. Deployed clients depend on neither
// its presence nor its absence; it is kept byte for byte.
func InvalidReply(now int64) []byte {
	return append(Reply(now, KindResp, "invalid", "command"), '\n')
}

// Lookup formats lookup|<who>|exists or lookup|<who>|doesntexist. Unlike the
// other replies its value comes third and the user second.
func LookupReply(now int64, who string, exists bool) []byte {
	if exists {
		return Reply(now, KindLookup, who, SubExists)
	}
	return Reply(now, KindLookup, who, SubDoesntExist)
}
