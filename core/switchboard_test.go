package core

import (
	"strings"
	"testing"
)

// step is one command and the replies it must cause, by user. A user not
// named in want must get nothing.
type step struct {
	from string            // who sends
	cmd  string            // verb|arg; the session id is appended
	want map[string]string // user -> expected reply (without server time)
}

func TestSwitchboard(t *testing.T) {
	ringing := []step{{"alice", "call|bob", map[string]string{"alice": "ring|available|bob", "bob": "ring|incoming|alice"}}}
	inCall := append(ringing, step{"bob", "accept|alice", map[string]string{"alice": "call|start|bob", "bob": "call|start|alice"}})
	invalid := "resp|invalid|command\n"
	tests := []struct {
		name  string
		setup []step
		steps []step
	}{
		{"call idle user", nil, ringing},
		{"call unknown user", nil, []step{{"alice", "call|nobody", map[string]string{"alice": "ring|notavailable|nobody"}}}},
		{"call offline user", nil, []step{{"alice", "call|carol", map[string]string{"alice": "ring|notavailable|carol"}}}},
		{"call himself", nil, []step{{"alice", "call|alice", map[string]string{"alice": "ring|busy|alice"}}}},
		{"call ringing user", ringing, []step{{"carol*", "call|bob", map[string]string{"carol": "ring|busy|bob"}}}},
		{"call user in call", inCall, []step{{"carol*", "call|alice", map[string]string{"carol": "ring|busy|alice"}}}},
		{"call while ringing", ringing, []step{{"alice", "call|carol*", map[string]string{"alice": invalid}}}},
		{"accept", ringing, []step{{"bob", "accept|alice", map[string]string{"alice": "call|start|bob", "bob": "call|start|alice"}}}},
		{"caller cannot accept own call", ringing, []step{{"alice", "accept|bob", map[string]string{"alice": invalid}}}},
		{"accept wrong caller", ringing, []step{{"bob", "accept|carol", map[string]string{"bob": invalid}}}},
		{"accept without call", nil, []step{{"bob", "accept|alice", map[string]string{"bob": invalid}}}},
		{"accept twice", inCall, []step{{"bob", "accept|alice", map[string]string{"bob": invalid}}}},
		{"reject", ringing, []step{
			{"bob", "reject|alice", map[string]string{"alice": "call|reject|bob"}},
			{"alice", "call|bob", map[string]string{"alice": "ring|available|bob", "bob": "ring|incoming|alice"}},
		}},
		{"caller cannot reject", ringing, []step{{"alice", "reject|bob", map[string]string{"alice": invalid}}}},
		{"reject answered call", inCall, []step{{"bob", "reject|alice", map[string]string{"bob": invalid}}}},
		{"timeout", ringing, []step{
			{"alice", "timeout|bob", map[string]string{"bob": "ring|timeout|alice"}},
			{"bob", "accept|alice", map[string]string{"bob": invalid}},
		}},
		{"callee cannot timeout", ringing, []step{{"bob", "timeout|alice", map[string]string{"bob": invalid}}}},
		{"timeout answered call", inCall, []step{{"alice", "timeout|bob", map[string]string{"alice": invalid}}}},
		{"caller cancels ringing", ringing, []step{{"alice", "end|bob", map[string]string{"bob": "call|end|alice"}}}},
		{"callee cannot end ringing", ringing, []step{{"bob", "end|alice", map[string]string{"bob": invalid}}}},
		{"caller ends call", inCall, []step{
			{"alice", "end|bob", map[string]string{"bob": "call|end|alice"}},
			{"bob", "call|alice", map[string]string{"bob": "ring|available|alice", "alice": "ring|incoming|bob"}},
		}},
		{"callee ends call", inCall, []step{{"bob", "end|alice", map[string]string{"alice": "call|end|bob"}}}},
		{"end names wrong peer", inCall, []step{{"bob", "end|carol", map[string]string{"bob": invalid}}}},
		{"end without call", nil, []step{{"alice", "end|bob", map[string]string{"alice": invalid}}}},
		{"end twice", inCall, []step{
			{"alice", "end|bob", map[string]string{"bob": "call|end|alice"}},
			{"bob", "end|alice", map[string]string{"bob": invalid}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, Config{})
			clients := map[string]*client{"alice": h.login("alice"), "bob": h.login("bob")}
			for _, st := range append(tt.setup, tt.steps...) {
				from := strings.TrimSuffix(st.from, "*")
				if clients[from] == nil { // "carol*": carol logs in for this step
					clients[from] = h.login(from)
				}
				clients[from].say(splitCmd(strings.ReplaceAll(st.cmd, "*", "")))
				// The sender's barrier first: once it is answered, its command
				// has run and queued everything it causes.
				got := map[string][]string{from: clients[from].sync()}
				for user, c := range clients {
					if user != from {
						got[user] = c.sync()
					}
				}
				for user := range clients {
					got := got[user]
					want, ok := st.want[user]
					switch {
					case !ok && len(got) > 0:
						t.Fatalf("after %s %s: %s got %q, want nothing", st.from, st.cmd, user, got)
					case ok && (len(got) != 1 || !strings.HasSuffix(got[0], "|"+want) || strings.Count(got[0], "|") != 3):
						t.Fatalf("after %s %s: %s got %q, want [ts|%s]", st.from, st.cmd, user, got, want)
					}
				}
			}
		})
	}
}

func splitCmd(s string) (string, string) {
	verb, arg, _ := strings.Cut(s, "|")
	return verb, arg
}
