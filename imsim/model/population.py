"""Large populations without listing them: a customer's ``generate:`` block.

```yaml
customers:
  - name: Retail
    generate: {count: 100000, first_id: "15550000000", product: Softphone,
               balance: 5.00, buddies_per_account: 3}
```

expands at load time into ``count`` accounts numbered from ``first_id``; account
``k`` gets the next ``buddies_per_account`` generated accounts (wrapping round) as
buddies and the password ``password`` with ``{id}`` replaced by its number. Accounts
listed by hand stay as written, before the generated ones.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from imsim.model.config import Account, Frozen, Name, NonNegativeMoney

MAX_GENERATED = 1_000_000  # the scale goal; bounds the memory a scenario can ask for
MAX_BUDDY_LINKS = 20_000_000


class Generate(Frozen):
    """How many accounts to generate for a customer, and what they look like."""

    count: int = Field(ge=1, le=MAX_GENERATED)
    first_id: str = Field(pattern=r"^[1-9][0-9]{5,14}$")
    product: Name
    balance: NonNegativeMoney = Decimal(0)
    buddies_per_account: int = Field(0, ge=0, le=1000)
    password: str = Field("secret-{id}", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _id_text(cls, value: object) -> object:
        if isinstance(value, dict) and isinstance(value.get("first_id"), int):
            return {**value, "first_id": str(value["first_id"])}
        return value

    @model_validator(mode="after")
    def _fits(self) -> Generate:
        last = int(self.first_id) + self.count - 1
        if len(str(last)) != len(self.first_id):
            raise ValueError(f"{self.count} numbers from {self.first_id} run past "
                             f"{len(self.first_id)} digits")
        if self.buddies_per_account >= self.count:
            raise ValueError("buddies_per_account must be smaller than count")
        if self.count * self.buddies_per_account > MAX_BUDDY_LINKS:
            raise ValueError(f"count x buddies_per_account is more than {MAX_BUDDY_LINKS} "
                             "buddy links")
        return self

    def ids(self) -> list[str]:
        first = int(self.first_id)
        return [str(first + k) for k in range(self.count)]

    def accounts(self) -> list[Account]:
        """The generated accounts (already validated as a block, so built unchecked)."""
        ids, size, k = self.ids(), self.count, self.buddies_per_account
        templated = "{id}" in self.password
        given = set(Account.model_fields)   # one set for all: frozen models never change it
        return [Account.model_construct(
            given,
            id=number,
            password=self.password.replace("{id}", number) if templated else self.password,
            product=self.product, balance=self.balance, blocked=False,
            buddies=tuple(ids[(i + j) % size] for j in range(1, k + 1)))
            for i, number in enumerate(ids)]
