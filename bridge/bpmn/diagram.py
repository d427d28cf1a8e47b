"""Draw the diagram (BPMNDI) of a BPMN 2.0 file as SVG.

    svg = render_svg(Path("bpmn/OneCMS_Nextgen_WF.bpmn20.xml").read_bytes())

    python -m bridge.bpmn.diagram IN.bpmn20.xml OUT.svg

Only what the file's diagram says is drawn, where it says: pools and lanes with their names,
tasks, sub-processes, events (start thin, end thick, terminate filled, non-interrupting dashed,
timer/message/signal/error/escalation markers), gateways (X, +, O, event-based, complex) and
sequence/message flows and associations with their names. The first BPMNDiagram is drawn.

The output is deterministic (same bytes in, same bytes out): no timestamps, no generated ids,
coordinates rounded to two decimals, elements in document order. Every drawn BPMN element is a
`<g data-bpmn-id="...">`, so tests and tools can find the shape of a node or flow.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from bridge.bpmn.safe_xml import read_xml
from bridge.errors import BridgeError

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
SVG = "http://www.w3.org/2000/svg"

FONT = "Helvetica, Arial, sans-serif"
INK = "#22313f"
MUTED = "#5b6b7a"
LANE_BAND = 30  # the name band at the left of a horizontal pool or lane

_TASKS = {"task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "manualTask", "receiveTask",
          "sendTask", "callActivity"}
_CONTAINERS = {"subProcess", "transaction", "adHocSubProcess"}
_EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
_GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
_TASK_FILL = {"userTask": "#eef5fc", "serviceTask": "#f0f4ec", "callActivity": "#f6f1fa"}


class DiagramError(BridgeError, ValueError):
    """The file is not XML, or has no diagram to draw."""


def fmt(value: float) -> str:
    """Fixed formatting for coordinates: at most two decimals, no trailing zeros, never '-0'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _ns(element) -> str | None:
    return etree.QName(element).namespace if isinstance(element.tag, str) else None


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _bounds(element) -> Box | None:
    found = element.find(f"{{{DC}}}Bounds")
    if found is None:
        return None
    try:
        return Box(*(float(found.get(a, "0")) for a in ("x", "y", "width", "height")))
    except ValueError:
        return None


def _box(shape) -> Box:
    """A drawn shape's bounds: the renderer keeps only shapes that have them (_Renderer.shapes)."""
    box = _bounds(shape)
    if box is None:
        raise ValueError(f"shape {shape.get('id')!r} has no usable dc:Bounds")
    return box


def _label_box(element) -> Box | None:
    label = element.find(f"{{{BPMNDI}}}BPMNLabel")
    return _bounds(label) if label is not None else None


# -- text ---------------------------------------------------------------------------------------------

_NARROW = set("ijl.,;:!|'()[]ft ")
_WIDE = set("mwMW@%")


def text_width(text: str, size: float) -> float:
    """An estimate of the rendered width of `text` in a Helvetica-like font (good enough to wrap)."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 0.32
        elif char in _WIDE:
            width += 0.88
        elif char.isupper() or char.isdigit():
            width += 0.68
        else:
            width += 0.58
    return width * size


def wrap(text: str, width: float, size: float) -> list[str]:
    """Greedy word wrap; a word longer than the width is cut at hyphens or stays whole."""
    lines: list[str] = []
    for paragraph in text.replace("\r", "").split("\n"):
        current = ""
        for word in paragraph.split():
            candidate = f"{current} {word}" if current else word
            if current and text_width(candidate, size) > width:
                lines.append(current)
                current = word
            else:
                current = candidate
        if current:
            lines.append(current)
    return lines


# -- the renderer -------------------------------------------------------------------------------------

class _Renderer:
    def __init__(self, root) -> None:
        self.root = root
        self.model: dict[str, Any] = {}  # id -> lxml element
        for element in root.iter():
            if _ns(element) == BPMN and element.get("id"):
                self.model.setdefault(element.get("id"), element)
        diagram = root.find(f"{{{BPMNDI}}}BPMNDiagram")
        plane = diagram.find(f"{{{BPMNDI}}}BPMNPlane") if diagram is not None else None
        if plane is None:
            raise DiagramError("the file has no BPMNDiagram/BPMNPlane (no diagram interchange) to draw")
        self.plane = plane
        self.shapes = [s for s in plane if _ns(s) == BPMNDI and _local(s) == "BPMNShape" and _bounds(s)]
        self.edges = [e for e in plane if _ns(e) == BPMNDI and _local(e) == "BPMNEdge"]
        self.svg = etree.Element(f"{{{SVG}}}svg", nsmap={None: SVG})

    # helpers --------------------------------------------------------------------------------------

    def kind(self, element_id: str | None) -> str:
        element = self.model.get(element_id or "")
        return _local(element) if element is not None else ""

    def name(self, element_id: str | None) -> str:
        element = self.model.get(element_id or "")
        if element is None:
            return ""
        if _local(element) == "textAnnotation":
            text = element.find(f"{{{BPMN}}}text")
            return (text.text or "").strip() if text is not None else ""
        return (element.get("name") or "").strip()

    @staticmethod
    def sub(parent, tag: str, **attributes) -> etree._Element:
        node = etree.SubElement(parent, f"{{{SVG}}}{tag}")
        for key, value in attributes.items():
            if value is None:
                continue
            node.set(key.rstrip("_").replace("_", "-"), fmt(value) if isinstance(value, float | int) else value)
        return node

    def group(self, parent, element_id: str | None, kind: str) -> etree._Element:
        g = self.sub(parent, "g", class_=f"bpmn {kind}" if kind else "bpmn")
        if element_id:
            g.set("data-bpmn-id", element_id)
            name = self.name(element_id)
            title = self.sub(g, "title")
            title.text = f"{name} ({element_id})" if name else element_id
        return g

    def text_lines(self, parent, lines: list[str], cx: float, top: float, size: float, *, anchor="middle",
                   weight=None, fill=INK, halo=False) -> None:
        if not lines:
            return
        line_height = size * 1.2
        text = self.sub(parent, "text", x=cx, y=top, font_size=size, font_weight=weight,
                        fill=fill, text_anchor=anchor)
        if halo:  # keeps a label readable where it crosses a line
            text.set("stroke", "#ffffff")
            text.set("stroke-width", "3")
            text.set("stroke-linejoin", "round")
            text.set("paint-order", "stroke")
        for i, line in enumerate(lines):
            span = self.sub(text, "tspan", x=cx, dy=(size * 0.8 if i == 0 else line_height))
            span.text = line

    def centred_text(self, parent, text: str, box: Box, size: float, **kw) -> None:
        lines = wrap(text, max(box.w - 8, 20), size)
        block = len(lines) * size * 1.2
        self.text_lines(parent, lines, box.cx, box.cy - block / 2, size, **kw)

    def outside_label(self, parent, text: str, shape: Box, label: Box | None, size=11.0) -> None:
        """Names of events, gateways, flows: in their BPMNLabel bounds when given, else under the shape."""
        if not text:
            return
        if label is not None and label.w > 0:
            lines = wrap(text, max(label.w, 40), size)
            self.text_lines(parent, lines, label.cx, label.y, size, halo=True)
        else:
            lines = wrap(text, max(shape.w * 2.5, 90), size)
            self.text_lines(parent, lines, shape.cx, shape.y + shape.h + 4, size, halo=True)

    # drawing ----------------------------------------------------------------------------------------

    def render(self) -> str:
        box = self.extent()
        margin = 20.0
        x0, y0 = box.x - margin, box.y - margin
        width, height = box.w + 2 * margin, box.h + 2 * margin
        svg = self.svg
        svg.set("width", fmt(math.ceil(width)))
        svg.set("height", fmt(math.ceil(height)))
        svg.set("viewBox", f"{fmt(x0)} {fmt(y0)} {fmt(math.ceil(width))} {fmt(math.ceil(height))}")
        svg.set("font-family", FONT)
        diagram_name = self.plane.getparent().get("name") or ""
        if diagram_name:
            self.sub(svg, "title").text = diagram_name
        self.sub(svg, "rect", x=x0, y=y0, width=math.ceil(width), height=math.ceil(height), fill="#ffffff")

        by_kind = [(self.kind(s.get("bpmnElement")), s) for s in self.shapes]
        layers = [self.sub(svg, "g", class_=name) for name in ("pools", "lanes", "containers", "edges", "nodes",
                                                                "boundary", "labels")]
        pools, lanes, containers, edges, nodes, boundary, labels = layers
        lane_index = 0
        for kind, shape in by_kind:
            if kind == "participant":
                self.draw_pool(pools, shape)
            elif kind == "lane":
                self.draw_lane(lanes, shape, lane_index)
                lane_index += 1
        # outer sub-processes first, so inner ones are drawn over them
        subprocesses = [s for k, s in by_kind if k in _CONTAINERS]
        for shape in sorted(subprocesses, key=lambda s: -(_box(s).w * _box(s).h)):
            self.draw_container(containers, shape)
        for edge in self.edges:
            self.draw_edge(edges, labels, edge)
        for kind, shape in by_kind:
            if kind in ("participant", "lane") or kind in _CONTAINERS:
                continue
            if kind == "boundaryEvent":
                self.draw_event(boundary, labels, shape, kind)
            elif kind in _EVENTS:
                self.draw_event(nodes, labels, shape, kind)
            elif kind in _GATEWAYS:
                self.draw_gateway(nodes, labels, shape, kind)
            elif kind in _TASKS:
                self.draw_task(nodes, shape, kind)
            else:
                self.draw_other(nodes, labels, shape, kind)
        for layer in layers:
            if len(layer) == 0:
                svg.remove(layer)
        etree.indent(svg, space=" ")
        for text in svg.iter(f"{{{SVG}}}text"):  # no whitespace between tspans: it would shift the lines
            text.text = None
            for span in text:
                span.tail = None
        return etree.tostring(svg, encoding="unicode") + "\n"

    def extent(self) -> Box:
        xs: list[float] = []
        ys: list[float] = []
        for shape in self.shapes:
            for b in (_bounds(shape), _label_box(shape)):
                if b is not None:
                    xs += [b.x, b.x + b.w]
                    ys += [b.y, b.y + b.h]
        for edge in self.edges:
            for x, y in self.waypoints(edge):
                xs.append(x)
                ys.append(y)
            label = _label_box(edge)
            if label is not None:
                xs += [label.x, label.x + label.w]
                ys += [label.y, label.y + label.h]
        if not xs:
            raise DiagramError("the diagram has no shapes or edges")
        return Box(min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    @staticmethod
    def waypoints(edge) -> list[tuple[float, float]]:
        points = []
        for point in edge.iterfind(f"{{{DI}}}waypoint"):
            try:
                points.append((float(point.get("x", "0")), float(point.get("y", "0"))))
            except ValueError:
                continue
        return points

    def horizontal(self, shape, box: Box) -> bool:
        flag = shape.get("isHorizontal")
        return flag.strip().lower() == "true" if flag is not None else box.w >= box.h

    def draw_pool(self, parent, shape) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        g = self.group(parent, element_id, "participant")
        self.sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, fill="#ffffff", stroke=INK,
                 stroke_width=1.5)
        self.band_name(g, shape, box, self.name(element_id), size=13, weight="bold")

    def draw_lane(self, parent, shape, index: int) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        g = self.group(parent, element_id, "lane")
        self.sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h,
                 fill="#f7f9fb" if index % 2 == 0 else "#ffffff", stroke=INK, stroke_width=1)
        self.band_name(g, shape, box, self.name(element_id), size=12, weight="bold")

    def band_name(self, g, shape, box: Box, text: str, size: float, weight: str) -> None:
        if self.horizontal(shape, box):
            self.sub(g, "line", x1=box.x + LANE_BAND, y1=box.y, x2=box.x + LANE_BAND, y2=box.y + box.h,
                     stroke=INK, stroke_width=1)
            lines = wrap(text, max(box.h - 10, 20), size)[:2]
            centre_x = box.x + LANE_BAND / 2 - (len(lines) - 1) * size * 0.6
            # rotated -90 degrees: reads bottom to top, centred in the band
            text_el = self.sub(g, "text", x=0, y=0, font_size=size, font_weight=weight,
                               fill=INK, text_anchor="middle",
                               transform=f"translate({fmt(centre_x)} {fmt(box.cy)}) rotate(-90)")
            for i, line in enumerate(lines):
                span = self.sub(text_el, "tspan", x=0, dy=(size * 0.35 if i == 0 else size * 1.2))
                span.text = line
        else:
            self.sub(g, "line", x1=box.x, y1=box.y + LANE_BAND, x2=box.x + box.w, y2=box.y + LANE_BAND,
                     stroke=INK, stroke_width=1)
            self.text_lines(g, wrap(text, box.w - 10, size)[:1], box.cx, box.y + 8, size, weight=weight)

    def draw_container(self, parent, shape) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        kind = self.kind(element_id)
        g = self.group(parent, element_id, kind)
        expanded = shape.get("isExpanded", "true").strip().lower() != "false"
        element = self.model.get(element_id or "")
        event_sub = element is not None and (element.get("triggeredByEvent") or "").lower() == "true"
        self.sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=10, ry=10, fill="#ffffff",
                 fill_opacity="0.85", stroke=INK, stroke_width=1.5, stroke_dasharray="4 3" if event_sub else None)
        if kind == "transaction":
            self.sub(g, "rect", x=box.x + 3, y=box.y + 3, width=box.w - 6, height=box.h - 6, rx=8, ry=8,
                     fill="none", stroke=INK, stroke_width=1)
        name = self.name(element_id)
        if expanded:
            self.text_lines(g, wrap(name, box.w - 16, 12)[:2], box.x + 8, box.y + 8, 12, anchor="start",
                            weight="bold")
        else:
            self.centred_text(g, name, box, 12)
            self.plus_marker(g, box.cx, box.y + box.h - 9)

    def plus_marker(self, g, cx: float, cy: float) -> None:
        self.sub(g, "rect", x=cx - 6, y=cy - 6, width=12, height=12, fill="none", stroke=INK, stroke_width=1)
        self.sub(g, "path", d=f"M{fmt(cx - 4)} {fmt(cy)}H{fmt(cx + 4)}M{fmt(cx)} {fmt(cy - 4)}V{fmt(cy + 4)}",
                 stroke=INK, stroke_width=1.2)

    def draw_task(self, parent, shape, kind: str) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        g = self.group(parent, element_id, kind)
        self.sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=10, ry=10,
                 fill=_TASK_FILL.get(kind, "#ffffff"), stroke=INK, stroke_width=3 if kind == "callActivity" else 1.5)
        name_box = Box(box.x, box.y + 6, box.w, box.h - 6) if kind in ("userTask", "serviceTask") else box
        self.centred_text(g, self.name(element_id), name_box, 12)
        if kind == "userTask":
            self.user_marker(g, box.x + 12, box.y + 10)
        elif kind == "serviceTask":
            self.sub(g, "circle", cx=box.x + 13, cy=box.y + 13, r=5, fill="none", stroke=INK, stroke_width=2,
                     stroke_dasharray="2 1.6")
        if kind == "callActivity" or (shape.get("isExpanded", "").lower() == "false"):
            self.plus_marker(g, box.cx, box.y + box.h - 9)

    def user_marker(self, g, x: float, y: float) -> None:
        """A small person: head and shoulders."""
        self.sub(g, "circle", cx=x, cy=y + 3, r=3, fill="none", stroke=INK, stroke_width=1)
        self.sub(g, "path", d=f"M{fmt(x - 6)} {fmt(y + 13)}C{fmt(x - 6)} {fmt(y + 7)} {fmt(x + 6)} {fmt(y + 7)} "
                 f"{fmt(x + 6)} {fmt(y + 13)}Z", fill="none", stroke=INK, stroke_width=1)

    def definition(self, element) -> str:
        if element is None:
            return ""
        for child in element:
            local = _local(child)
            if _ns(child) == BPMN and local.endswith("EventDefinition"):
                return local[: -len("EventDefinition")]
        return ""

    def draw_event(self, parent, labels, shape, kind: str) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        element = self.model.get(element_id or "")
        g = self.group(parent, element_id, kind)
        cx, cy, r = box.cx, box.cy, min(box.w, box.h) / 2
        interrupting = True
        if kind == "boundaryEvent" and element is not None:
            interrupting = (element.get("cancelActivity") or "true").strip().lower() != "false"
        if kind == "startEvent" and element is not None:
            interrupting = (element.get("isInterrupting") or "true").strip().lower() != "false"
        dash = None if interrupting else "5 3"
        definition = self.definition(element)
        if kind == "endEvent":
            self.sub(g, "circle", cx=cx, cy=cy, r=r - 2, fill="#ffffff", stroke=INK, stroke_width=4)
        elif kind == "startEvent":
            self.sub(g, "circle", cx=cx, cy=cy, r=r, fill="#ffffff", stroke=INK, stroke_width=1.5,
                     stroke_dasharray=dash)
        else:
            self.sub(g, "circle", cx=cx, cy=cy, r=r, fill="#ffffff", stroke=INK, stroke_width=1.5,
                     stroke_dasharray=dash)
            self.sub(g, "circle", cx=cx, cy=cy, r=r - 3, fill="none", stroke=INK, stroke_width=1,
                     stroke_dasharray=dash)
        throwing = kind in ("endEvent", "intermediateThrowEvent")
        self.event_marker(g, definition, cx, cy, r, throwing)
        self.outside_label(labels, self.name(element_id), box, _label_box(shape))

    def event_marker(self, g, definition: str, cx: float, cy: float, r: float, filled: bool) -> None:
        fill = INK if filled else "none"
        s = r / 18  # markers are drawn for an 18 px radius and scaled
        if definition == "terminate":
            self.sub(g, "circle", cx=cx, cy=cy, r=r * 0.55, fill=INK)
        elif definition == "timer":
            self.sub(g, "circle", cx=cx, cy=cy, r=r * 0.6, fill="#ffffff", stroke=INK, stroke_width=1.5)
            ticks = []
            for hour in range(12):
                angle = math.pi * 2 * hour / 12
                inner, outer = r * (0.46 if hour % 3 else 0.4), r * 0.56
                ticks.append(f"M{fmt(cx + inner * math.sin(angle))} {fmt(cy - inner * math.cos(angle))}"
                             f"L{fmt(cx + outer * math.sin(angle))} {fmt(cy - outer * math.cos(angle))}")
            self.sub(g, "path", d="".join(ticks), stroke=INK, stroke_width=1)
            self.sub(g, "path", d=f"M{fmt(cx)} {fmt(cy - r * 0.42)}L{fmt(cx)} {fmt(cy)}"
                     f"L{fmt(cx + r * 0.3)} {fmt(cy + r * 0.12)}", fill="none", stroke=INK, stroke_width=1.5,
                     stroke_linecap="round")
        elif definition == "message":
            w, h = 18 * s, 12 * s
            x, y = cx - w / 2, cy - h / 2
            self.sub(g, "rect", x=x, y=y, width=w, height=h, fill=fill, stroke=INK, stroke_width=1)
            self.sub(g, "path", d=f"M{fmt(x)} {fmt(y)}L{fmt(cx)} {fmt(cy + 1 * s)}L{fmt(x + w)} {fmt(y)}",
                     fill="none", stroke="#ffffff" if filled else INK, stroke_width=1)
        elif definition == "signal":
            self.sub(g, "path", d=f"M{fmt(cx)} {fmt(cy - 9 * s)}L{fmt(cx + 9 * s)} {fmt(cy + 7 * s)}"
                     f"L{fmt(cx - 9 * s)} {fmt(cy + 7 * s)}Z", fill=fill, stroke=INK, stroke_width=1)
        elif definition == "error":
            self.sub(g, "path", d=f"M{fmt(cx - 8 * s)} {fmt(cy + 8 * s)}L{fmt(cx - 3 * s)} {fmt(cy - 8 * s)}"
                     f"L{fmt(cx + 2 * s)} {fmt(cy + 1 * s)}L{fmt(cx + 8 * s)} {fmt(cy - 8 * s)}"
                     f"L{fmt(cx + 3 * s)} {fmt(cy + 8 * s)}L{fmt(cx - 2 * s)} {fmt(cy - 1 * s)}Z",
                     fill=fill, stroke=INK, stroke_width=1)
        elif definition == "escalation":
            self.sub(g, "path", d=f"M{fmt(cx)} {fmt(cy - 9 * s)}L{fmt(cx + 6 * s)} {fmt(cy + 8 * s)}"
                     f"L{fmt(cx)} {fmt(cy + 2 * s)}L{fmt(cx - 6 * s)} {fmt(cy + 8 * s)}Z",
                     fill=fill, stroke=INK, stroke_width=1)
        elif definition in ("conditional", "compensate", "cancel", "link"):
            letter = {"conditional": "?", "compensate": "<<", "cancel": "x", "link": ">"}[definition]
            self.text_lines(g, [letter], cx, cy - 6 * s, 12 * s, weight="bold")

    def draw_gateway(self, parent, labels, shape, kind: str) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        g = self.group(parent, element_id, kind)
        cx, cy = box.cx, box.cy
        hw, hh = box.w / 2, box.h / 2
        self.sub(g, "path", d=f"M{fmt(cx)} {fmt(box.y)}L{fmt(box.x + box.w)} {fmt(cy)}L{fmt(cx)} "
                 f"{fmt(box.y + box.h)}L{fmt(box.x)} {fmt(cy)}Z", fill="#fffdf3", stroke=INK, stroke_width=1.5)
        m = min(hw, hh) * 0.42
        if kind == "exclusiveGateway":
            self.sub(g, "path", d=f"M{fmt(cx - m)} {fmt(cy - m)}L{fmt(cx + m)} {fmt(cy + m)}"
                     f"M{fmt(cx + m)} {fmt(cy - m)}L{fmt(cx - m)} {fmt(cy + m)}", stroke=INK, stroke_width=3.5,
                     stroke_linecap="round")
        elif kind == "parallelGateway":
            p = m * 1.3
            self.sub(g, "path", d=f"M{fmt(cx - p)} {fmt(cy)}L{fmt(cx + p)} {fmt(cy)}"
                     f"M{fmt(cx)} {fmt(cy - p)}L{fmt(cx)} {fmt(cy + p)}", stroke=INK, stroke_width=3.5,
                     stroke_linecap="round")
        elif kind == "inclusiveGateway":
            self.sub(g, "circle", cx=cx, cy=cy, r=m * 1.15, fill="none", stroke=INK, stroke_width=2.5)
        elif kind == "complexGateway":
            p = m * 1.2
            d = p * 0.7
            self.sub(g, "path", d=f"M{fmt(cx - p)} {fmt(cy)}L{fmt(cx + p)} {fmt(cy)}M{fmt(cx)} {fmt(cy - p)}"
                     f"L{fmt(cx)} {fmt(cy + p)}M{fmt(cx - d)} {fmt(cy - d)}L{fmt(cx + d)} {fmt(cy + d)}"
                     f"M{fmt(cx + d)} {fmt(cy - d)}L{fmt(cx - d)} {fmt(cy + d)}", stroke=INK, stroke_width=2.5,
                     stroke_linecap="round")
        elif kind == "eventBasedGateway":
            self.sub(g, "circle", cx=cx, cy=cy, r=m * 1.3, fill="none", stroke=INK, stroke_width=1)
            self.sub(g, "circle", cx=cx, cy=cy, r=m * 1.05, fill="none", stroke=INK, stroke_width=1)
            points = []
            for i in range(5):
                angle = -math.pi / 2 + i * 2 * math.pi / 5
                points.append(f"{fmt(cx + m * 0.7 * math.cos(angle))} {fmt(cy + m * 0.7 * math.sin(angle))}")
            self.sub(g, "path", d="M" + "L".join(points) + "Z", fill="none", stroke=INK, stroke_width=1.2)
        self.outside_label(labels, self.name(element_id), box, _label_box(shape))

    def draw_other(self, parent, labels, shape, kind: str) -> None:
        box, element_id = _box(shape), shape.get("bpmnElement")
        g = self.group(parent, element_id, kind or "unknown")
        name = self.name(element_id)
        if kind == "textAnnotation":
            self.sub(g, "path", d=f"M{fmt(box.x + 10)} {fmt(box.y)}H{fmt(box.x)}V{fmt(box.y + box.h)}"
                     f"H{fmt(box.x + 10)}", fill="none", stroke=MUTED, stroke_width=1)
            lines = wrap(name, box.w - 8, 11)
            self.text_lines(g, lines, box.x + 5, box.y + 4, 11, anchor="start", fill=MUTED)
        elif kind in ("dataObjectReference", "dataObject", "dataInput", "dataOutput"):
            fold = min(box.w, box.h) * 0.3
            self.sub(g, "path", d=f"M{fmt(box.x)} {fmt(box.y)}H{fmt(box.x + box.w - fold)}"
                     f"L{fmt(box.x + box.w)} {fmt(box.y + fold)}V{fmt(box.y + box.h)}H{fmt(box.x)}Z",
                     fill="#ffffff", stroke=INK, stroke_width=1)
            self.outside_label(labels, name, box, _label_box(shape))
        elif kind == "dataStoreReference":
            ry = min(box.h * 0.12, 8)
            self.sub(g, "path", d=f"M{fmt(box.x)} {fmt(box.y + ry)}A{fmt(box.w / 2)} {fmt(ry)} 0 0 1 "
                     f"{fmt(box.x + box.w)} {fmt(box.y + ry)}V{fmt(box.y + box.h - ry)}A{fmt(box.w / 2)} {fmt(ry)} "
                     f"0 0 1 {fmt(box.x)} {fmt(box.y + box.h - ry)}Z", fill="#ffffff", stroke=INK, stroke_width=1)
            self.sub(g, "path", d=f"M{fmt(box.x)} {fmt(box.y + ry)}A{fmt(box.w / 2)} {fmt(ry)} 0 0 0 "
                     f"{fmt(box.x + box.w)} {fmt(box.y + ry)}", fill="none", stroke=INK, stroke_width=1)
            self.outside_label(labels, name, box, _label_box(shape))
        else:  # anything else the file places: a dashed box with its name
            self.sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=4, ry=4, fill="#ffffff",
                     stroke=MUTED, stroke_width=1, stroke_dasharray="4 3")
            self.centred_text(g, name, box, 11, fill=MUTED)

    def draw_edge(self, parent, labels, edge) -> None:
        element_id = edge.get("bpmnElement")
        kind = self.kind(element_id) or "edge"
        points = self.waypoints(edge)
        if len(points) < 2:
            return
        g = self.group(parent, element_id, kind)
        path = "M" + "L".join(f"{fmt(x)} {fmt(y)}" for x, y in points)
        dashed = {"messageFlow": "7 4", "association": "2 3", "dataInputAssociation": "2 3",
                  "dataOutputAssociation": "2 3"}.get(kind)
        colour = MUTED if kind.startswith(("association", "data")) else INK
        self.sub(g, "path", d=path, fill="none", stroke=colour, stroke_width=1.5, stroke_dasharray=dashed,
                 stroke_linejoin="round")
        if kind != "association":
            self.arrow_head(g, points[-2], points[-1], colour, open_head=kind != "sequenceFlow")
        if kind == "messageFlow":
            self.sub(g, "circle", cx=points[0][0], cy=points[0][1], r=4, fill="#ffffff", stroke=INK, stroke_width=1)
        if kind == "sequenceFlow":
            self.flow_start_marker(g, element_id, points)
        name = self.name(element_id)
        if name:
            label = _label_box(edge)
            if label is not None and label.w > 0:
                self.text_lines(labels, wrap(name, max(label.w, 40), 11), label.cx, label.y, 11, halo=True)
            else:  # next to the first waypoint, on the side the edge leaves
                (x1, y1), (x2, y2) = points[0], points[1]
                horizontal = abs(x2 - x1) >= abs(y2 - y1)
                lines = wrap(name, 120, 11)
                if horizontal:
                    self.text_lines(labels, lines, x1 + (6 if x2 >= x1 else -6), y1 - 6 - len(lines) * 13.2, 11,
                                    anchor="start" if x2 >= x1 else "end", halo=True)
                else:
                    self.text_lines(labels, lines, x1 + 6, y1 + (4 if y2 >= y1 else -4 - len(lines) * 13.2), 11,
                                    anchor="start", halo=True)

    def flow_start_marker(self, g, element_id: str, points) -> None:
        """A slash near the source of a default flow; a small diamond on a conditional flow from a task."""
        flow = self.model.get(element_id or "")
        if flow is None:
            return
        source = self.model.get(flow.get("sourceRef") or "")
        (x1, y1), (x2, y2) = points[0], points[1]
        length = math.hypot(x2 - x1, y2 - y1) or 1.0
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        if source is not None and source.get("default") == element_id:
            mx, my = x1 + ux * 10, y1 + uy * 10
            nx, ny = -uy, ux
            self.sub(g, "path", d=f"M{fmt(mx - ux * 4 + nx * 6)} {fmt(my - uy * 4 + ny * 6)}"
                     f"L{fmt(mx + ux * 4 - nx * 6)} {fmt(my + uy * 4 - ny * 6)}", stroke=INK, stroke_width=1.5)
        elif (source is not None and _local(source) in _TASKS | _CONTAINERS
              and flow.find(f"{{{BPMN}}}conditionExpression") is not None):
            nx, ny = -uy, ux
            pts = [(x1, y1), (x1 + ux * 8 + nx * 5, y1 + uy * 8 + ny * 5), (x1 + ux * 16, y1 + uy * 16),
                   (x1 + ux * 8 - nx * 5, y1 + uy * 8 - ny * 5)]
            self.sub(g, "path", d="M" + "L".join(f"{fmt(x)} {fmt(y)}" for x, y in pts) + "Z", fill="#ffffff",
                     stroke=INK, stroke_width=1)

    def arrow_head(self, g, start, end, colour: str, open_head: bool) -> None:
        (x1, y1), (x2, y2) = start, end
        length = math.hypot(x2 - x1, y2 - y1)
        if length == 0:
            return
        ux, uy = (x2 - x1) / length, (y2 - y1) / length
        nx, ny = -uy, ux
        size, half = 10.0, 4.5
        bx, by = x2 - ux * size, y2 - uy * size
        d = (f"M{fmt(x2)} {fmt(y2)}L{fmt(bx + nx * half)} {fmt(by + ny * half)}"
             f"L{fmt(bx - nx * half)} {fmt(by - ny * half)}Z")
        self.sub(g, "path", d=d, fill="#ffffff" if open_head else colour, stroke=colour, stroke_width=1,
                 stroke_linejoin="round")


def render_svg(bpmn_xml: bytes) -> str:
    """The SVG picture of a BPMN file's diagram (its first BPMNDiagram)."""
    root = _read(bpmn_xml)
    if _ns(root) != BPMN or _local(root) != "definitions":
        raise DiagramError(f"not a BPMN 2.0 file: the root element is <{_local(root)}>")
    return _Renderer(root).render()


def flow_node_ids(bpmn_xml: bytes) -> list[str]:
    """Ids of every flow node (events, activities, gateways) of a BPMN file, in document order."""
    root = _read(bpmn_xml)
    kinds = _TASKS | _CONTAINERS | _EVENTS | _GATEWAYS
    return [e.get("id") for e in root.iter(f"{{{BPMN}}}*") if _local(e) in kinds and e.get("id")]


def _read(bpmn_xml: bytes) -> etree._Element:
    """The root element, read with the same limits and refusals as a deploy (bridge/bpmn/safe_xml.py)."""
    root, issues = read_xml(bpmn_xml, "<diagram>")
    if root is None:
        raise DiagramError("; ".join(issue.message for issue in issues))
    return root


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.bpmn.diagram",
                                     description="Draw a BPMN file's diagram (BPMNDI) as SVG.")
    parser.add_argument("source", type=Path, help="the .bpmn20.xml / .bpmn file")
    parser.add_argument("target", type=Path, help="the .svg file to write ('-' for stdout)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        svg = render_svg(args.source.read_bytes())
    except (OSError, DiagramError) as err:
        print(f"{args.source}: {err}", file=sys.stderr)
        return 1
    if str(args.target) == "-":
        sys.stdout.write(svg)
    else:
        args.target.write_text(svg, encoding="utf-8")
        print(f"wrote {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
