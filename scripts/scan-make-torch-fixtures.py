#!/usr/bin/env python3
"""Write the small real-torch fixtures under testdata/scan/torch/ (run once with a venv that has
torch; the files are committed so the test suite does not need the 5 GB torch install).
Only benign objects are saved here: malicious samples are assembled by hand in tests/cli/scan.rs."""
import collections, os, sys
import torch

out = sys.argv[1] if len(sys.argv) > 1 else "testdata/scan/torch"
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.bn = torch.nn.BatchNorm1d(16)
        self.fc2 = torch.nn.Linear(16, 4)
    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))

net = Net()
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(4, 8)).sum().backward()
opt.step()

torch.save(net.state_dict(), f"{out}/state_dict.pt")
torch.save(net.state_dict(), f"{out}/state_dict_legacy.pt", _use_new_zipfile_serialization=False)
torch.save({"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
            "best": 0.91, "names": ["a", "b"]}, f"{out}/checkpoint.ckpt")
torch.save({"bf16": torch.randn(3, 3).to(torch.bfloat16), "i64": torch.arange(10),
            "bool": torch.tensor([True, False]), "f16": torch.randn(5).half(),
            "u8": torch.arange(4, dtype=torch.uint8), "view": torch.arange(20.0)[5:9],
            "param": torch.nn.Parameter(torch.ones(2)), "empty": torch.empty(0),
            "c64": torch.randn(2, dtype=torch.complex64), "sizes": torch.Size([2, 3]),
            "dev": torch.device("cpu"), "dtype": torch.float32,
            "od": collections.OrderedDict(a=1)}, f"{out}/mixed_dtypes.bin")
torch.save([torch.randn(2, 2) for _ in range(3)], f"{out}/tensor_list.pth", pickle_protocol=4)
torch.save(net.state_dict(), f"{out}/state_dict_proto5.pt", pickle_protocol=5)
# Suspicious (benign but code-carrying classes): whole-module pickle and TorchScript.
torch.save(net, f"{out}/full_model.pt")
torch.jit.script(net).save(f"{out}/scripted.pt")
for f in sorted(os.listdir(out)):
    print(f, os.path.getsize(f"{out}/{f}"))
