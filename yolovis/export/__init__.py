"""`yolovis export`: the fully convolutional part of YoloV4+1 as an ONNX graph or an OpenVINO IR, in a folder
that `Detector.from_checkpoint` reads wherever a checkpoint is accepted.

The exported network is `YoloV4Plus1.forward_dense` (backbone, SPP, neck, detection head and embeddings, BN
folded); the box selection, the RoI heads (the mask head and any other head the model has) and the postprocess
run in PyTorch on the exported network's outputs (docs/deployment.md says why).

    folder.py    export_checkpoint() writes NAME_onnx/ or NAME_openvino/; load_exported() reads one
    onnx.py      the graph (DenseGraph), torch -> ONNX, and ONNX Runtime as a runner
    openvino.py  ONNX -> OpenVINO IR, and OpenVINO as a runner
    runtime.py   what both runners share: their outputs back into a DenseOutput
"""
