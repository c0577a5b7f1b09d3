"""Train LeNet-5 on Fashion-MNIST (28x28 clothes, 10 classes) with a hand-written loop.

Needs the dataset's IDX files: `apt-get install dataset-fashion-mnist` puts
them in /usr/share/datasets/fashion-mnist, where load_dataset looks by default
(elsewhere: load_dataset(..., data_dir=FOLDER)). Without them it says so and stops.

By default it trains one epoch on the first 20,000 training images and prints
"epoch 1: last batch loss 0.7730, test accuracy 77.57%"; on a 2-core Intel
Xeon that takes about 4 s of wall time. `--full` trains 5 epochs on all 60,000:
87.56% after epoch 4 and 86.74% after epoch 5, in 45 s there.
"""

import sys

import minigrad_q as mq
from minigrad_q import nn, optim
from minigrad_q.data import DataLoader, ImageDataset, load_dataset
from minigrad_q.models import lenet5

epochs, train_images = (5, None) if "--full" in sys.argv[1:] else (1, 20_000)

try:
    train_set = load_dataset("fashion-mnist", split="train")
    test_set = load_dataset("fashion-mnist", split="test")
except (OSError, ValueError) as error:
    print(f"Fashion-MNIST is not available, skipping: {error}")
else:
    if train_images is not None:  # a quick run on the first images
        train_set = ImageDataset(train_set.images[:train_images], train_set.labels[:train_images], name="fashion-mnist",
                                 split="train", num_classes=10, classes=train_set.classes)
    mq.manual_seed(0)
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, seed=0)
    test_loader = DataLoader(test_set, batch_size=1000)
    model = lenet5()  # 1x28x28 in, 10 classes out
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    print(f"{len(train_set):,} training images, {len(test_set):,} test images; classes: {', '.join(test_set.classes)}")

    for epoch in range(1, epochs + 1):
        model.train()
        for images, labels in train_loader:
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        model.eval()
        correct = 0
        with mq.no_grad():
            for images, labels in test_loader:
                correct += (model(images).argmax(dim=1) == labels).sum().item()
        print(f"epoch {epoch}: last batch loss {loss.item():.4f}, test accuracy {correct / len(test_set):.2%}")
