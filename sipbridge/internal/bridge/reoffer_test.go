package bridge

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/livekit/protocol/livekit"
)

type fakeDispatcher struct {
	dispatches []*livekit.AgentDispatch
	created    []*livekit.CreateAgentDispatchRequest
	listErr    error
}

func (f *fakeDispatcher) ListDispatch(_ context.Context, req *livekit.ListAgentDispatchRequest) (*livekit.ListAgentDispatchResponse, error) {
	if f.listErr != nil {
		return nil, f.listErr
	}
	var in []*livekit.AgentDispatch
	for _, d := range f.dispatches {
		if d.Room == req.Room {
			in = append(in, d)
		}
	}
	return &livekit.ListAgentDispatchResponse{AgentDispatches: in}, nil
}

func (f *fakeDispatcher) CreateDispatch(_ context.Context, req *livekit.CreateAgentDispatchRequest) (*livekit.AgentDispatch, error) {
	f.created = append(f.created, req)
	d := &livekit.AgentDispatch{Room: req.Room, AgentName: req.AgentName, Metadata: req.Metadata, State: &livekit.AgentDispatchState{}}
	f.dispatches = append(f.dispatches, d)
	return d, nil
}

func withJob(d *livekit.AgentDispatch) *livekit.AgentDispatch {
	d.State = &livekit.AgentDispatchState{Jobs: []*livekit.Job{{Id: "AJ_1"}}}
	return d
}

// A dispatch no worker took is offered again, with its metadata; one that has a job,
// or an agent with a taken dispatch beside dropped ones, is left alone.
func TestReofferOnlyAgentsWithoutAJob(t *testing.T) {
	f := &fakeDispatcher{dispatches: []*livekit.AgentDispatch{
		{Room: "call-1", AgentName: "sales-agent", State: &livekit.AgentDispatchState{}},
		withJob(&livekit.AgentDispatch{Room: "call-1", AgentName: "survey"}),
		{Room: "call-1", AgentName: "survey", State: &livekit.AgentDispatchState{}},
		withJob(&livekit.AgentDispatch{Room: "call-2", AgentName: "sales-agent"}),
	}}
	want := []*livekit.RoomAgentDispatch{{AgentName: "sales-agent", Metadata: `{"x":1}`}, {AgentName: "survey"}}
	offered, err := reoffer(context.Background(), f, "call-1", want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(offered, []string{"sales-agent"}) || len(f.created) != 1 ||
		f.created[0].Room != "call-1" || f.created[0].Metadata != `{"x":1}` {
		t.Fatalf("offered %v, created %v", offered, f.created)
	}
	// Still nobody: offered again (a new dispatch each time, the old ones hold no job).
	if offered, _ := reoffer(context.Background(), f, "call-1", want); len(offered) != 1 {
		t.Fatalf("second look offered %v", offered)
	}
	// Taken now.
	withJob(f.dispatches[len(f.dispatches)-1])
	if offered, _ := reoffer(context.Background(), f, "call-1", want); len(offered) != 0 {
		t.Fatalf("offered %v after a worker took the call", offered)
	}
}

func TestReofferReportsAnUnreachableServer(t *testing.T) {
	f := &fakeDispatcher{listErr: errors.New("connection refused")}
	if _, err := reoffer(context.Background(), f, "call-1", []*livekit.RoomAgentDispatch{{AgentName: "a"}}); err == nil {
		t.Fatal("no error")
	}
	if len(f.created) != 0 {
		t.Fatal("dispatched without knowing the room's dispatches")
	}
}
