#!/usr/bin/env python3
"""Groups a perf profile of the server (bench/profile.sh) by what the CPU did.

Usage: bench/perf_categories.py perf.data

Two views of the same user-space samples:
- self: each sample's leaf function, grouped into categories (where the
  instructions ran: the allocator, memcpy, tungstenite, tokio, ...);
- inclusive: the share of samples with a given component anywhere on the
  stack (the wasm call, the broadcast into client queues, the writer, ...).
Kernel frames are sampled too when perf may (root here), and grouped by
kernel function.
"""

import collections
import re
import subprocess
import sys

KERNEL = [
    ("kernel: context switches, sleep and wake-up (futex, scheduler)", r"finish_task_switch|schedule|futex|try_to_wake_up|ttwu|enqueue|dequeue|pick_next|switch_|update_curr|psi_|select_task|raw_spin_unlock_irq"),
    ("kernel: epoll and eventfd", r"epoll|ep_|eventfd"),
    ("kernel: TCP send and loopback delivery", r"tcp|skb|ip_|__ip|inet|dev_|netif|net_rx|process_backlog|sock|__napi|loopback|nf_|xmit|copy_from_iter|kmem_cache|slab|kmalloc|kfree|__alloc|page_frag|sk_"),
    ("kernel: system call entry and exit", r"syscall|entry_|fdget|fput|__x64|its_return_thunk|srso|ret_from|exit_to_user"),
]
SELF = [
    ("allocator (malloc/free)", r"malloc|free|realloc|_int_|tcache|arena|cfree"),
    ("memcpy/memmove", r"memcpy|memmove|memset"),
    ("syscall wrappers (user side of send/recv/epoll/futex)", r"^(__)?(libc_)?(send|recv|write|read|epoll|futex|syscall)|__GI_|_syscall"),
    ("wasm guest code (JIT, unsymbolised)", r"^\[unknown\]$|^wasm"),
    ("wasmtime runtime (calls, lifting, fibers)", r"wasmtime|cranelift|wasmparser"),
    ("WebSocket framing (tungstenite)", r"tungstenite"),
    ("client queues (tokio mpsc, semaphore)", r"tokio::sync|batch_semaphore|roomhost_host::client"),
    ("tokio scheduler and wakers", r"tokio::runtime::(scheduler|task|context)|tokio::runtime::park|waker|tokio::task"),
    ("tokio I/O and timer drivers, mio", r"tokio::runtime::(io|time)|tokio::time|mio::|tokio::net|tokio::io|hyper_util::rt"),
    ("hyper (upgraded stream)", r"hyper"),
    ("futures (split lock, select)", r"futures_util|BiLock|futures_core"),
    ("roomhost connection", r"roomhost_host::connection"),
    ("roomhost room and broadcast", r"roomhost_host::(room|wasm)"),
    ("cancellation tokens", r"tokio_util::sync::cancellation"),
    ("bytes", r"^bytes::|<bytes::"),
]
INCLUSIVE = [
    ("room actor (inbox, wasm call, broadcast)", r"roomhost_host::room::actor"),
    ("  wasm `message` call (host side + guest)", r"call_message|RoomInstance.*message|wasmtime::runtime::component::func"),
    ("  broadcast into client queues", r"roomhost_host::wasm::state.*broadcast|Host.*broadcast"),
    ("  ClientSender::send (queue push + wake)", r"roomhost_host::client::ClientSender::send"),
    ("connection writer (write_loop)", r"roomhost_host::connection::write_loop|roomhost_host::connection::write_batch"),
    ("  tungstenite write path (encode into the buffer, send)", r"tungstenite::protocol::frame|format_into_buf|buffer_frame"),
    ("  socket send (user side)", r"^(__)?(libc_)?send"),
    ("connection reader (forward to room)", r"roomhost_host::connection::Reader"),
    ("tokio scheduler (run queue, park, wake)", r"tokio::runtime::scheduler"),
]


def main(path):
    script = subprocess.run(
        ["perf", "script", "-i", path, "-F", "ip,sym,dso"],
        capture_output=True, text=True, check=False,
    ).stdout
    samples, stack = [], []
    for line in script.splitlines():
        line = line.strip()
        if not line:
            if stack:
                samples.append(stack)
            stack = []
            continue
        parts = line.split(None, 1)
        rest = parts[1] if len(parts) > 1 else "[unknown]"
        kernel = "[kernel" in rest
        sym = re.sub(r"\s*\([^()]*\)$", "", rest).strip()
        sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
        stack.append(("k:" if kernel else "") + sym)
    if stack:
        samples.append(stack)
    total = len(samples)
    if not total:
        print("no samples")
        return
    self_counts = collections.Counter()
    for stack in samples:
        leaf = stack[0]
        table = SELF
        if leaf.startswith("k:"):
            leaf, table = leaf[2:], KERNEL + [("kernel: other", r"")]
        for name, pattern in table:
            if re.search(pattern, leaf):
                self_counts[name] += 1
                break
        else:
            self_counts["other"] += 1
    print(f"{total} samples (user and kernel)\n")
    print("| where the instructions ran (self) | share |")
    print("|---|---|")
    for name, count in self_counts.most_common():
        print(f"| {name} | {count / total * 100:.1f} % |")
    print()
    print("| component on the stack (inclusive) | share |")
    print("|---|---|")
    for name, pattern in INCLUSIVE:
        count = sum(1 for stack in samples if any(re.search(pattern, f) for f in stack))
        print(f"| {name} | {count / total * 100:.1f} % |")


if __name__ == "__main__":
    main(sys.argv[1])
