package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/livekit/protocol/livekit"
)

// An incoming call offered again to its agent while it rings.
//
// livekit-server offers a room's agent dispatch to the workers once, as the room is
// created, and drops it if every worker is full at that moment: a call that arrives
// while the last calls are still hanging up would ring with nobody coming. So while
// an incoming call for an agent rings with no agent in the room, the bridge looks at
// the room's dispatches every reofferEvery, and an agent whose dispatches all hold no
// job gets a new one: a worker that has freed a slot since takes the call.
//
// A job shows in its dispatch as soon as a worker has accepted it, long before
// reofferEvery, so a call that was taken is not offered twice (and a second agent
// that joins anyway leaves: agent/worker.py).

// reofferEvery is how long a call for an agent rings before it is offered again (and
// between offers), until Settings.AgentWait.
const reofferEvery = time.Second

// reofferTimeout bounds one look at the room's dispatches and the new ones.
const reofferTimeout = time.Second

// Dispatcher is livekit-server's agent dispatch API (lksdk.AgentDispatchClient).
type Dispatcher interface {
	ListDispatch(ctx context.Context, req *livekit.ListAgentDispatchRequest) (*livekit.ListAgentDispatchResponse, error)
	CreateDispatch(ctx context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error)
}

// reoffer creates a new dispatch in room for every agent of want that has no job
// there, and returns the names of the agents it offered the call to again.
func reoffer(ctx context.Context, d Dispatcher, room string, want []*livekit.RoomAgentDispatch) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, reofferTimeout)
	defer cancel()
	listed, err := d.ListDispatch(ctx, &livekit.ListAgentDispatchRequest{Room: room})
	if err != nil {
		return nil, fmt.Errorf("list dispatches: %w", err)
	}
	taken := map[string]bool{}
	for _, ad := range listed.GetAgentDispatches() {
		if len(ad.GetState().GetJobs()) > 0 {
			taken[ad.AgentName] = true
		}
	}
	var offered []string
	for _, agent := range want {
		if taken[agent.AgentName] {
			continue
		}
		if _, err := d.CreateDispatch(ctx, &livekit.CreateAgentDispatchRequest{
			Room:      room,
			AgentName: agent.AgentName,
			Metadata:  agent.Metadata,
		}); err != nil {
			return offered, fmt.Errorf("dispatch %q again: %w", agent.AgentName, err)
		}
		offered = append(offered, agent.AgentName)
	}
	return offered, nil
}
