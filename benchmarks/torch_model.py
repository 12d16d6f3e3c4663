"""The published attention LSTM written directly in PyTorch, for speed comparisons only.

Two LSTMs with the attention head of :mod:`serattn.models.attention_lstm` on top:

- ``recurrent_dropout > 0``: a per-step loop with the same math as Keras' LSTM cell
  with recurrent dropout (one dropout mask per gate on the previous output, drawn
  once per batch); ``torch.nn.LSTM`` has no recurrent dropout, so this is what
  "the same model" takes in PyTorch.
- ``recurrent_dropout == 0``: ``torch.nn.LSTM`` (one fused op per sequence).

Padding is at the end and only the attention softmax is masked: for a one-way LSTM
the valid outputs never see post-padding (the training view of serattn.training.trainer
relies on the same fact).
"""

import torch
from torch import nn


class AttentionLSTM(nn.Module):
    """frames (B, T, D) + mask (B, T) -> class logits (B, classes)."""

    def __init__(self, num_features, num_classes, units=60, attention_units=50, recurrent_dropout=0.5):
        super().__init__()
        self.units = units
        self.recurrent_dropout = recurrent_dropout
        if recurrent_dropout:
            self.kernel = nn.Linear(num_features, 4 * units)  # gates i, f, c, o as in Keras
            self.recurrent_kernel = nn.Parameter(torch.empty(4, units, units))
            nn.init.orthogonal_(self.recurrent_kernel)
        else:
            self.lstm = nn.LSTM(num_features, units, batch_first=True)
        self.attention_dense1 = nn.Linear(units, attention_units, bias=False)
        self.attention_dense2 = nn.Linear(attention_units, 1, bias=False)
        self.output = nn.Linear(units, num_classes)

    def lstm_outputs(self, features):
        if not self.recurrent_dropout:
            return self.lstm(features)[0]  # (B, T, units)
        batch, frames, _ = features.shape
        x = self.kernel(features).view(batch, frames, 4, self.units)  # input part of all steps at once
        h = features.new_zeros(batch, self.units)
        c = features.new_zeros(batch, self.units)
        keep = 1.0 - self.recurrent_dropout
        masks = torch.bernoulli(features.new_full((4, batch, self.units), keep)) / keep if self.training \
            else None
        outputs = []
        for t in range(frames):
            hs = h.expand(4, batch, self.units) * masks if masks is not None else h.expand(4, batch, self.units)
            z = x[:, t].transpose(0, 1) + torch.bmm(hs, self.recurrent_kernel)  # (4, B, units)
            i, f, g, o = torch.sigmoid(z[0]), torch.sigmoid(z[1]), torch.tanh(z[2]), torch.sigmoid(z[3])
            c = f * c + i * g
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)  # (B, T, units)

    def forward(self, features, mask):
        outputs = self.lstm_outputs(features)  # (B, T, units)
        scores = self.attention_dense2(torch.tanh(self.attention_dense1(outputs))).squeeze(-1)  # (B, T)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)  # (B, T), zero on padding
        representation = (outputs * weights.unsqueeze(-1)).sum(dim=1)  # (B, units)
        return self.output(representation)


def make_train_step(model, learning_rate=1e-3):
    """A function (features, mask, targets, sample_weights) -> loss doing one Adam step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_function = nn.CrossEntropyLoss(reduction="none")

    def step(features, mask, targets, sample_weights):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = (loss_function(model(features, mask), targets) * sample_weights).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step
