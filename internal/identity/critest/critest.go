// Package critest is a container runtime answering the CRI RuntimeService
// (k8s.io/cri-api's own service definitions) over a unix socket, for tests:
// it lists the containers and pod sandboxes it is given, as containerd or
// CRI-O would for the kubelet's containers.
package critest

import (
	"context"
	"net"
	"sync/atomic"

	"google.golang.org/grpc"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Container is one container of a pod, labelled as the kubelet labels it.
type Container struct {
	ID, Name               string
	SandboxID              string
	Pod, Namespace, PodUID string
}

// Server is the runtime. ListCalls counts ListContainers calls.
type Server struct {
	cri.UnimplementedRuntimeServiceServer
	Name       string // RuntimeName in Version (default "containerd")
	containers []Container
	ListCalls  atomic.Int64
	srv        *grpc.Server
}

// Listen serves containers on the unix socket path until Close.
func Listen(path string, containers []Container) (*Server, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := &Server{Name: "containerd", containers: containers, srv: grpc.NewServer()}
	cri.RegisterRuntimeServiceServer(s.srv, s)
	go s.srv.Serve(l)
	return s, nil
}

// Close stops serving and removes the socket.
func (s *Server) Close() { s.srv.Stop() }

func (s *Server) Version(context.Context, *cri.VersionRequest) (*cri.VersionResponse, error) {
	return &cri.VersionResponse{Version: "0.1.0", RuntimeName: s.Name, RuntimeVersion: "test", RuntimeApiVersion: "v1"}, nil
}

func (s *Server) ListContainers(_ context.Context, req *cri.ListContainersRequest) (*cri.ListContainersResponse, error) {
	s.ListCalls.Add(1)
	resp := &cri.ListContainersResponse{}
	for _, c := range s.containers {
		if f := req.GetFilter(); f != nil && f.Id != "" && f.Id != c.ID {
			continue
		}
		resp.Containers = append(resp.Containers, &cri.Container{
			Id: c.ID, PodSandboxId: c.SandboxID, Metadata: &cri.ContainerMetadata{Name: c.Name},
			State: cri.ContainerState_CONTAINER_RUNNING,
			Labels: map[string]string{
				"io.kubernetes.pod.name": c.Pod, "io.kubernetes.pod.namespace": c.Namespace,
				"io.kubernetes.pod.uid": c.PodUID, "io.kubernetes.container.name": c.Name,
			},
		})
	}
	return resp, nil
}

func (s *Server) ListPodSandbox(context.Context, *cri.ListPodSandboxRequest) (*cri.ListPodSandboxResponse, error) {
	resp := &cri.ListPodSandboxResponse{}
	seen := map[string]bool{}
	for _, c := range s.containers {
		if c.SandboxID == "" || seen[c.SandboxID] {
			continue
		}
		seen[c.SandboxID] = true
		resp.Items = append(resp.Items, &cri.PodSandbox{Id: c.SandboxID, State: cri.PodSandboxState_SANDBOX_READY,
			Metadata: &cri.PodSandboxMetadata{Name: c.Pod, Namespace: c.Namespace, Uid: c.PodUID}})
	}
	return resp, nil
}
