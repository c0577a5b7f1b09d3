"""Train LeNet-5 on the bundled 8x8 digits with a hand-written loop.

This is what `minigrad-q train` does, written the way you would write it in
PyTorch: a DataLoader, a model, an optimizer, a learning-rate schedule, and
the loop. On a 2-core Intel Xeon it ends at 97.50% test accuracy after 10 epochs,
in about 1.3 s of wall time.
"""

import minigrad_q as mq
from minigrad_q import nn, optim
from minigrad_q.data import DataLoader, load_dataset
from minigrad_q.models import lenet5

EPOCHS = 10
mq.manual_seed(0)

train_set = load_dataset("digits", split="train")  # 1,437 images, 1x8x8, normalised
test_set = load_dataset("digits", split="test")  # 360 images
train_loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
test_loader = DataLoader(test_set, batch_size=360)

model = lenet5(input_size=8)
optimizer = optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=EPOCHS)
loss_fn = nn.CrossEntropyLoss()
print(model)

for epoch in range(1, EPOCHS + 1):
    model.train()
    for images, labels in train_loader:
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    scheduler.step()

    model.eval()
    correct = 0
    with mq.no_grad():
        for images, labels in test_loader:
            correct += (model(images).argmax(dim=1) == labels).sum().item()
    print(f"epoch {epoch:2d}: last batch loss {loss.item():.4f}, test accuracy {correct / len(test_set):.2%}")
