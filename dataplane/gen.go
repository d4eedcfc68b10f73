package dataplane

// The C sources live in bpf/. Types shared with Go are exported once, from transit.
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type host_cfg -type ep_key -type endpoint -type port -type net_key -type net_info -type host_set -type vpc_info -type hop -type learned_host -type reason transit ../bpf/transit.c
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel agent ../bpf/agent.c
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel reference ../bpf/reference.c
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel pass ../bpf/pass.c
//go:generate go tool bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel agentTC ../bpf/agent_tc.c
