"""Venmo: venmo.total_received_from (money a friend sent me this year); venmo.pay_friend (send money with a note)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from ..people import Supervisor, password, person
from ..task import TaskSpec, Template, all_pages, indent, login_code

NOTES = ["Dinner at Luigi's", "Concert tickets", "Rent share", "Groceries", "Uber ride", "Birthday gift",
         "Coffee", "Movie night", "Gas money", "Utilities", "Book club snacks", "Ski trip", "Brunch", "Pizza"]


def _add_friends(models: Any, sup: Supervisor, rng: random.Random, n: int) -> tuple[Any, list[Any]]:
    """The supervisor's Venmo account and `n` friends (each with their own account), both ways."""
    me = sup.open_account("venmo", venmo_balance=round(rng.uniform(400, 2000), 2))
    friends, names = [], {sup.person.name}
    while len(friends) < n:
        p = person(rng)
        if p.name in names:
            continue
        names.add(p.name)
        friend = models.venmo.User(first_name=p.first_name, last_name=p.last_name, email=p.email,
                                   password=password(rng), venmo_balance=round(rng.uniform(0, 900), 2),
                                   verified=True, created_at=datetime(2021, 3, 1) + timedelta(days=rng.randrange(300)),
                                   last_logged_in=datetime(2023, 4, 1) + timedelta(days=rng.randrange(40)))
        friend.save()
        since = datetime(2022, 2, 1) + timedelta(days=rng.randrange(120))
        models.venmo.Friendship(user_id=me.id, friend_id=friend.id, created_at=since).save()
        models.venmo.Friendship(user_id=friend.id, friend_id=me.id, created_at=since).save()
        friends.append(friend)
    return me, friends


def _transaction(models: Any, rng: random.Random, sender: Any, receiver: Any, when: datetime) -> Any:
    t = models.venmo.Transaction(sender_id=sender.id, receiver_id=receiver.id, amount=round(rng.uniform(4, 180), 2),
                                 description=rng.choice(NOTES), created_at=when, updated_at=when,
                                 private=rng.random() < 0.3)
    t.save()
    return t


FIND_FRIEND = all_pages(
    "friends", "apis.venmo.search_friends(access_token=token, page_index=page, page_limit=20)") + """
    friend = next(f for f in friends if f["first_name"] + " " + f["last_name"] == "{name}")
"""

TOTAL_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    predicted_answer = json.loads(models.end.supervisor.Task.all()[0].answer)
    with test("""
        assert the answer is the total amount the friend sent me in 2023.
        """):
        test.answer(predicted_answer, ground_truth_answer)
    with test("""
        assert nothing was added, removed or changed in Venmo.
        """):
        test.case(models.changed_model_names(ignore=["venmo.User"]), "==", set())
'''


def total_received_from(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    me, friends = _add_friends(models, sup, rng, rng.randint(4, 8))
    target = friends[0]
    transactions = []
    for _ in range(rng.randint(15, 40)):
        other = target if rng.random() < 0.45 else rng.choice(friends)
        when = datetime(2022, 7, 1) + timedelta(days=rng.randrange(320), minutes=rng.randrange(1440))
        sender, receiver = (other, me) if rng.random() < 0.6 else (me, other)
        transactions.append(_transaction(models, rng, sender, receiver, when))
    for _ in range(rng.randint(1, 3)):  # at least one payment from the friend this year
        when = datetime(2023, 1, 2) + timedelta(days=rng.randrange(130), minutes=rng.randrange(1440))
        transactions.append(_transaction(models, rng, target, me, when))
    total = round(sum(t.amount for t in transactions if t.sender_id == target.id and t.receiver_id == me.id
                      and t.created_at >= datetime(2023, 1, 1)), 2)
    solution = ("def solution(apis, requester):\n" + indent(login_code("venmo"))
                + FIND_FRIEND.replace("{name}", f"{target.first_name} {target.last_name}") + indent("""\
        received, page = [], 0
        while True:
            batch = apis.venmo.show_transactions(access_token=token, user_email=friend["email"],
                                                 direction="received", page_index=page, page_limit=20)
            if not batch:
                break
            received += batch
            page += 1
        total = sum(t["amount"] for t in received if t["created_at"] >= "2023-01-01")
        apis.supervisor.complete_task(answer=round(total, 2))
    """))
    return TaskSpec(
        instruction=f"How much money in total has my friend {target.first_name} {target.last_name} sent me on "
                    f"Venmo so far this year? Answer in dollars.",
        solution=solution, evaluation=TOTAL_EVALUATION, answer=total,
        public_data={"friend_email": target.email})


PAY_EVALUATION = '''
import json


def evaluate(test, public_data, private_data, main_user, models, ground_truth_answer):
    added, updated, removed = models.changed_records("venmo.Transaction")
    with test("""
        assert exactly one transaction was added, from me to the friend, with the amount and the note.
        """):
        test.case(len(added) + len(updated) + len(removed), "==", 1)
        test.case(len(added), "==", 1)
        test.case(added[0].sender_id, "==", private_data.sender_id)
        test.case(added[0].receiver_id, "==", private_data.receiver_id)
        test.case(round(added[0].amount, 2), "==", private_data.amount)
        test.case(added[0].description.strip(), "==", private_data.note)
    with test("""
        assert my Venmo balance went down by the amount.
        """):
        start = models.start.venmo.User.find_from(main_user).venmo_balance
        end = models.end.venmo.User.find_from(main_user).venmo_balance
        test.case(round(start - end, 2), "==", private_data.amount)
    with test("""
        assert nothing else changed in Venmo (besides balances and the receiver's notification).
        """):
        ignore = ["venmo.User", "venmo.Transaction", "venmo.Notification"]
        test.case(models.changed_model_names(ignore=ignore), "==", set())
'''


def pay_friend(models: Any, sup: Supervisor, rng: random.Random) -> TaskSpec:
    me, friends = _add_friends(models, sup, rng, rng.randint(3, 25))
    for _ in range(rng.randint(3, 12)):
        a, b = rng.sample(friends + [me], 2)
        _transaction(models, rng, a, b, datetime(2023, 1, 1) + timedelta(days=rng.randrange(130)))
    target = rng.choice(friends)
    amount = float(rng.choice([rng.randint(5, 150), rng.randint(10, 300) + 0.5]))
    note = rng.choice(NOTES)
    amount_text = f"{amount:.2f}".removesuffix(".00")
    solution = ("def solution(apis, requester):\n" + indent(login_code("venmo"))
                + FIND_FRIEND.replace("{name}", f"{target.first_name} {target.last_name}") + indent(f"""\
        apis.venmo.create_transaction(access_token=token, receiver_email=friend["email"], amount={amount!r},
                                      description={note!r})
        apis.supervisor.complete_task()
    """))
    return TaskSpec(
        instruction=f"Send ${amount_text} to my friend {target.first_name} {target.last_name} on Venmo from "
                    f"my Venmo balance with the note \"{note}\".",
        solution=solution, evaluation=PAY_EVALUATION, answer=None,
        public_data={"amount": amount, "note": note},
        private_data={"sender_id": me.id, "receiver_id": target.id, "amount": amount, "note": note})


TEMPLATES = [
    Template("venmo.total_received_from", ("venmo",), total_received_from),
    Template("venmo.pay_friend", ("venmo",), pay_friend),
]
