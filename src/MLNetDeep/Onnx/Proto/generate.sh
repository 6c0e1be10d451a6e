#!/usr/bin/env bash
# Regenerates OnnxProto.g.cs from onnx-subset.proto with the protoc that the Grpc.Tools NuGet package ships
# (restore any project referencing Grpc.Tools 2.85.0 first, or point PROTOC at a protoc binary).
set -euo pipefail
cd "$(dirname "$0")"
protoc=${PROTOC:-$HOME/.nuget/packages/grpc.tools/2.85.0/tools/linux_x64/protoc}
"$protoc" --csharp_out=. --csharp_opt=file_extension=.g.cs onnx-subset.proto
mv OnnxSubset.g.cs OnnxProto.g.cs
