package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		in   string
		want Command
		err  error
	}{
		{"1764168000|login|zapper|railgun", Command{Time: 1764168000, Verb: Login, Arg: "zapper", Password: "railgun"}, nil},
		{"DD1764168000|lookup|zapper|42", Command{Time: 1764168000, Verb: Lookup, Arg: "zapper", Session: 42}, nil},
		{"1|call|bob|9223372036854775807", Command{Time: 1, Verb: Call, Arg: "bob", Session: 9223372036854775807}, nil},
		{"1|accept|bob|1", Command{Time: 1, Verb: Accept, Arg: "bob", Session: 1}, nil},
		{"1|reject|bob|1", Command{Time: 1, Verb: Reject, Arg: "bob", Session: 1}, nil},
		{"1|end|bob|1", Command{Time: 1, Verb: End, Arg: "bob", Session: 1}, nil},
		{"1|timeout|bob|1", Command{Time: 1, Verb: Timeout, Arg: "bob", Session: 1}, nil},
		{"1|login|a|pass word", Command{Time: 1, Verb: Login, Arg: "a", Password: "pass word"}, nil},
		{"1|call|bob|9223372036854775808", Command{}, ErrSession},
		{"1|call|bob|0", Command{}, ErrSession},
		{"1|call|bob|12x", Command{}, ErrSession},
		{"1|call|bob|+12", Command{}, ErrSession},
		{"1|call|bob|12\n", Command{}, ErrSession},
		{"1|call|bob| 12", Command{}, ErrSession},
		{"1x|call|bob|12", Command{}, ErrTimestamp},
		{"-1|call|bob|12", Command{}, ErrTimestamp},
		{"|call|bob|12", Command{}, ErrTimestamp},
		{"D|call|bob|12", Command{}, ErrTimestamp},
		{"1|CALL|bob|12", Command{}, ErrVerb},
		{"1|dance|bob|12", Command{}, ErrVerb},
		{"1|call||12", Command{}, ErrEmpty},
		{"1|login|bob|", Command{}, ErrEmpty},
		{"1|call|bob|12|extra", Command{}, ErrFields},
		{"1|call|bob", Command{}, ErrFields},
		{"", Command{}, ErrFields},
		{"D", Command{}, ErrFields},
		{"1|login|a|" + strings.Repeat("x", MaxCommand), Command{}, ErrTooLong},
	}
	for _, tt := range tests {
		got, err := ParseCommand([]byte(tt.in))
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseRegistration(t *testing.T) {
	tests := []struct {
		in   string
		want Registration
		ok   bool
	}{
		{"1764168000|42", Registration{Time: 1764168000, Session: 42}, true},
		{"DD1764168000|42", Registration{Time: 1764168000, Session: 42}, true},
		{"1|42|datagram", Registration{Time: 1, Session: 42, Datagram: true}, true},
		{"1|42|stream", Registration{}, false},
		{"1|42|", Registration{}, false},
		{"1|0", Registration{}, false},
		{"1|", Registration{}, false},
		{"|42", Registration{}, false},
		{"1|42x", Registration{}, false},
		{"42", Registration{}, false},
		{"1|42|datagram|x", Registration{}, false},
	}
	for _, tt := range tests {
		got, err := ParseRegistration([]byte(tt.in))
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRegistration(%q) = %+v, %v; want %+v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestReplies(t *testing.T) {
	if got := string(Reply(1764168000, KindRing, SubAvailable, "bob")); got != "1764168000|ring|available|bob" {
		t.Errorf("Reply = %q", got)
	}
	if got := string(InvalidReply(5)); got != "5|resp|invalid|command\n" {
		t.Errorf("InvalidReply = %q", got)
	}
	if got := string(LookupReply(5, "bob", true)); got != "5|lookup|bob|exists" {
		t.Errorf("LookupReply = %q", got)
	}
	if got := string(LookupReply(5, "bob", false)); got != "5|lookup|bob|doesntexist" {
		t.Errorf("LookupReply = %q", got)
	}
}

func TestIsKeepalive(t *testing.T) {
	for in, want := range map[string]bool{"D": true, "DDD": true, "": false, "Dx": false, "d": false} {
		if got := IsKeepalive([]byte(in)); got != want {
			t.Errorf("IsKeepalive(%q) = %v", in, got)
		}
	}
}

func TestCommandLogValueHidesPassword(t *testing.T) {
	c, _ := ParseCommand([]byte("1|login|zapper|railgun"))
	if s := c.LogValue().String(); strings.Contains(s, "railgun") {
		t.Errorf("LogValue leaks the password: %s", s)
	}
}
