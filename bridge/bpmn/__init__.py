"""BPMN files as the bridge reads them, one concern per module:

    model.py     what a file means to the bridge: processes, departments, user tasks, queues, roles, issues
    safe_xml.py  reading untrusted XML: size, depth and element limits, no DOCTYPE, no network
    reader.py    parse_bpmn / load_bpmn: a file -> the model, validated
    policy.py    what a deployed file may make the engine run (scripts, delegates, expressions)
    diagram.py   a file's BPMNDI diagram -> SVG (`python -m bridge.bpmn.diagram IN OUT`)
"""
