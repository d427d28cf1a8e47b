"""bridge.bpmn.diagram: the committed picture of the workflow is generated, complete and well-formed."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from bridge.bpmn.diagram import DiagramError, flow_node_ids, main, render_svg
from tests.conftest import PROJECT_ROOT

BPMN_FILE = PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml"
SVG_FILE = PROJECT_ROOT / "bpmn" / "OneCMS_Nextgen_WF.svg"
REGENERATE = "python -m bridge.bpmn.diagram bpmn/OneCMS_Nextgen_WF.bpmn20.xml bpmn/OneCMS_Nextgen_WF.svg"
# Third-party files with diagrams (Flowable's own test resources), read where they lie.
CORPUS = PROJECT_ROOT.parent / "shared" / "bpmn-corpus" / "flowable-engine"
SVG_NS = "http://www.w3.org/2000/svg"
BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI_NS = "http://www.omg.org/spec/BPMN/20100524/DI"


def parse_svg(text: str):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(text.encode(), parser)


def drawn(svg) -> dict[str, etree._Element]:
    return {g.get("data-bpmn-id"): g for g in svg.iter(f"{{{SVG_NS}}}g") if g.get("data-bpmn-id")}


def test_the_committed_svg_is_a_fresh_render_of_the_committed_bpmn():
    fresh = render_svg(BPMN_FILE.read_bytes())
    assert SVG_FILE.read_text(encoding="utf-8") == fresh, (
        f"{SVG_FILE.name} is out of date with {BPMN_FILE.name}: regenerate it with `{REGENERATE}`")


def test_rendering_is_deterministic():
    data = BPMN_FILE.read_bytes()
    assert render_svg(data) == render_svg(data)


def test_the_picture_has_a_shape_for_every_node_flow_lane_and_the_pool():
    svg = parse_svg(SVG_FILE.read_text(encoding="utf-8"))
    assert etree.QName(svg).localname == "svg"
    shapes = drawn(svg)
    model = etree.fromstring(BPMN_FILE.read_bytes())
    flows = [f.get("id") for f in model.iter(f"{{{BPMN_NS}}}sequenceFlow")]
    lanes = [lane.get("id") for lane in model.iter(f"{{{BPMN_NS}}}lane")]
    nodes = flow_node_ids(BPMN_FILE.read_bytes())
    assert len(nodes) == 33 and len(lanes) == 6
    missing = [i for i in [*nodes, *flows, *lanes, "pool_onecms"] if i not in shapes]
    assert missing == []
    # every name is written somewhere in the picture
    texts = " ".join(" ".join(t.itertext()) for t in svg.iter(f"{{{SVG_NS}}}text"))
    for name in ("Case Intake", "Quality Assurance", "Supervisor approval", "Approval decision", "Rework",
                 "Fraud", "Case withdrawn"):
        assert all(word in texts for word in name.split()), name


def test_the_bpmn_notation_is_drawn():
    shapes = drawn(parse_svg(SVG_FILE.read_text(encoding="utf-8")))

    def styles(element_id: str, attribute: str) -> list[str]:
        return [e.get(attribute) for e in shapes[element_id].iter() if e.get(attribute) is not None]

    # non-interrupting SLA timers are dashed; the interrupting start is not
    assert any(styles("slaLegalReview", "stroke-dasharray"))
    assert not any(styles("caseReceived", "stroke-dasharray"))
    # end events are thick; terminate ends have a filled inner circle, plain ends do not
    assert "4" in styles("caseClosed", "stroke-width")
    filled = [c for c in shapes["caseClosed"].iter(f"{{{SVG_NS}}}circle") if c.get("fill") not in ("#ffffff", "none")]
    assert len(filled) == 1
    assert not [c for c in shapes["legalEscalationHandled"].iter(f"{{{SVG_NS}}}circle")
                if c.get("fill") not in ("#ffffff", "none")]
    # gateways are diamonds, tasks rounded boxes, flows end in an arrow head
    assert shapes["routeByType"].find(f"{{{SVG_NS}}}path").get("d").endswith("Z")
    assert shapes["registerCase"].find(f"{{{SVG_NS}}}rect").get("rx") == "10"
    assert len(shapes["flow_approval_rework"].findall(f"{{{SVG_NS}}}path")) == 2


@pytest.mark.parametrize("name", ["pools.bpmn", "testInvoiceProcessSignavio.bpmn",
                                  "testInvoiceProcessCamundaFoxDesigner.bpmn20.xml"])
def test_third_party_files_render(name):
    source = CORPUS / name
    if not source.exists():
        pytest.skip(f"the BPMN corpus is not beside the repo ({CORPUS})")
    data = source.read_bytes()
    svg = parse_svg(render_svg(data))
    shapes = drawn(svg)
    model = etree.fromstring(data)
    placed = [e.get("bpmnElement") for e in model.iter(f"{{{BPMNDI_NS}}}BPMNShape", f"{{{BPMNDI_NS}}}BPMNEdge")]
    assert placed and [p for p in placed if p not in shapes] == []
    x, y, width, height = (float(v) for v in svg.get("viewBox").split())
    assert width > 0 and height > 0 and (svg.get("width"), svg.get("height")) == (f"{width:g}", f"{height:g}")


def test_a_file_without_a_diagram_or_with_a_doctype_is_refused():
    no_di = (b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p">'
             b'<startEvent id="s"/></process></definitions>')
    with pytest.raises(DiagramError, match="no BPMNDiagram"):
        render_svg(no_di)
    entity = (b'<?xml version="1.0"?><!DOCTYPE definitions [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
              b'<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p">'
              b'<documentation>&x;</documentation></process></definitions>')
    with pytest.raises(DiagramError, match="DOCTYPE"):
        render_svg(entity)
    with pytest.raises(DiagramError, match="not well-formed"):
        render_svg(b"<definitions")
    with pytest.raises(DiagramError, match="not a BPMN"):
        render_svg(b"<svg/>")


def test_the_command_line_writes_the_svg(tmp_path: Path, capsys):
    target = tmp_path / "out.svg"
    assert main([str(BPMN_FILE), str(target)]) == 0
    assert target.read_text(encoding="utf-8") == SVG_FILE.read_text(encoding="utf-8")
    broken = tmp_path / "broken.bpmn20.xml"
    broken.write_bytes(b"<definitions")
    assert main([str(broken), str(tmp_path / "never.svg")]) == 1
    assert "not well-formed" in capsys.readouterr().err
    assert not (tmp_path / "never.svg").exists()
