"""A layered data-flow graph of any module (a user's own network with adds, concatenations and
branches): torch.fx traces it, every value's shape comes from running the graph once, and a
Sugiyama layout (grandalf) places the nodes in layers with few crossings. A deep network is traced
block by block and runs of like blocks become one node ("x 36")."""

from __future__ import annotations

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import CnnlabError
from .svg import FILL, Canvas

MAX_NODES = 120  # a graph larger than this is traced again with blocks as its nodes
NODE_H, ROW_GAP, COL_GAP = 34.0, 26.0, 18.0


class BlockTracer(fx.Tracer):
    """Treats the blocks inside a top-level Sequential (ResNet's layer3.0 ...) as single nodes."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return super().is_leaf_module(m, qualname) or (qualname.count(".") == 1 and not isinstance(m, nn.Sequential))


def traced(model: nn.Module, input_size: tuple, blocks: bool) -> fx.GraphModule:
    """The model's graph with every value's shape (run once on zeros, batch 1)."""
    tracer = BlockTracer() if blocks else fx.Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as e:  # a forward torch.fx cannot follow (Python control flow on values)
        raise CnnlabError(f"torch.fx cannot trace {type(model).__name__}: {str(e).splitlines()[0]}") from None
    gm = fx.GraphModule(tracer.root, graph)
    param = next(model.parameters(), None)
    x = torch.zeros(1, *input_size, device=param.device if param is not None else "cpu")
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    return gm


def nodes_and_edges(gm: fx.GraphModule) -> tuple[list[dict], list[tuple[int, int]]]:
    """Every value the graph computes as a node (label, kind, shape) and the edges between them."""
    modules = dict(gm.named_modules())
    keep = [n for n in gm.graph.nodes if n.op not in ("get_attr",)]
    index = {n: i for i, n in enumerate(keep)}
    out = []
    for n in keep:
        meta = n.meta.get("tensor_meta")
        shape = "x".join(map(str, meta.shape[1:])) if meta is not None and hasattr(meta, "shape") else ""
        if n.op == "call_module":
            kind_of = type(modules[n.target]).__name__
            label, kind = f"{n.target}: {kind_of}", _kind(modules[n.target])
        elif n.op in ("call_function", "call_method"):
            label, kind = getattr(n.target, "__name__", str(n.target)), "other"
        else:
            label, kind = ("input" if n.op == "placeholder" else "output"), "input"
        out.append({"label": label, "shape": shape, "kind": kind, "type": n.op, "repeat": 1})
    edges = [(index[a], index[n]) for n in keep for a in n.all_input_nodes if a in index]
    return out, edges


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(m, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.AdaptiveAvgPool2d)):
        return "pool"
    return "fc" if isinstance(m, nn.Linear) else "other"


def collapse_runs(nodes: list[dict], edges: list[tuple[int, int]]) -> tuple[list[dict], list[tuple[int, int]]]:
    """Chains of blocks of one type (each fed only by the one before) as one node "x k"."""
    ins = {i: [a for a, b in edges if b == i] for i in range(len(nodes))}
    outs = {i: [b for a, b in edges if a == i] for i in range(len(nodes))}
    merged_into = {}
    for i, node in enumerate(nodes):
        prev = ins[i][0] if len(ins[i]) == 1 else None
        head = merged_into.get(prev, prev)
        if (
            prev is not None
            and node["type"] == "call_module"
            and len(outs[prev]) == 1
            and nodes[head]["label"].split(": ")[-1] == node["label"].split(": ")[-1]
            and nodes[head]["shape"] == node["shape"]
        ):
            merged_into[i] = head
            nodes[head]["repeat"] += 1
            nodes[head]["last"] = node["label"].split(": ")[0]
    keep = [i for i in range(len(nodes)) if i not in merged_into]
    new = {old: k for k, old in enumerate(keep)}
    target = {i: new[merged_into.get(i, i)] for i in range(len(nodes))}
    kept_edges = sorted({(target[a], target[b]) for a, b in edges if target[a] != target[b]})
    for i in keep:
        n = nodes[i]
        if n["repeat"] > 1:
            name, kind_of = n["label"].split(": ")
            n["label"] = f"{name} .. {n['last']}: {kind_of} x {n['repeat']}"
    return [nodes[i] for i in keep], kept_edges


def draw_graph(model: nn.Module, input_size: tuple, title: str) -> str:
    """The SVG text of the model's data-flow graph, top to bottom."""
    gm = traced(model, input_size, blocks=False)
    nodes, edges = nodes_and_edges(gm)
    if len(nodes) > MAX_NODES:
        nodes, edges = collapse_runs(*nodes_and_edges(traced(model, input_size, blocks=True)))
    positions, paths = layout(nodes, edges)
    c = Canvas()
    c.text(8, 16, title, size=13, anchor="start", bold=True)
    for path in paths:
        c.line(path)
    for node, (x, y, w) in zip(nodes, positions):
        c.rect(x - w / 2, y - NODE_H / 2, w, NODE_H, FILL.get(node["kind"], "#eee"), rx=5)
        c.text(x, y - 3, node["label"], size=9.5)
        c.text(x, y + 10, node["shape"], size=8.5)
    return c.svg(title)


def layout(nodes: list[dict], edges: list[tuple[int, int]]):
    """Centres and widths of the nodes and a path for every edge, from grandalf's Sugiyama layout."""
    from grandalf.graphs import Edge, Graph, Vertex
    from grandalf.layouts import SugiyamaLayout

    class View:
        def __init__(self, w: float = 0, h: float = NODE_H):
            self.w, self.h, self.xy, self.points = w, h, (0, 0), None

        def setpath(self, points):
            self.points = points

    widths = [max(len(n["label"]) * 5.6, len(n["shape"]) * 5.2) + 16 for n in nodes]
    vertices = [Vertex(i) for i in range(len(nodes))]
    for v, w in zip(vertices, widths):
        v.view = View(w)
    links = [Edge(vertices[a], vertices[b]) for a, b in edges]
    for e in links:
        e.view = View()
    graph = Graph(vertices, links)
    for part in graph.C:
        sug = SugiyamaLayout(part)
        sug.yspace, sug.xspace = ROW_GAP, COL_GAP
        sug.init_all(roots=[v for v in part.sV if not v.e_in()])
        sug.draw()
    # several parts side by side; the picture starts below the title
    x0 = min(v.view.xy[0] - v.view.w / 2 for v in vertices)
    y0 = min(v.view.xy[1] - NODE_H / 2 for v in vertices)
    shift = (14 - x0, 34 - y0)
    positions = [(v.view.xy[0] + shift[0], v.view.xy[1] + shift[1], v.view.w) for v in vertices]
    paths = []
    for e, (a, b) in zip(links, edges):
        pts = e.view.points or [vertices[a].view.xy, vertices[b].view.xy]
        pts = [(x + shift[0], y + shift[1]) for x, y in pts]
        pts[0] = (pts[0][0], pts[0][1] + NODE_H / 2)  # from the bottom of one box to the top of the next
        pts[-1] = (pts[-1][0], pts[-1][1] - NODE_H / 2 - 1)
        paths.append(pts)
    return positions, paths
