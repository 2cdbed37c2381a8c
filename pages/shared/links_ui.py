"""The page's address kept in step with its choices, so that a copied address reopens the view
(README, "Links"); the checks of what an address holds are cifar_core.share.links'.

An address is read once, when it is new to this browser session: a link or a bookmark opened,
a reload, the browser's Back. After that the page's own choices stand and are written into the
address as they change. A page switch starts with an empty address (Streamlit clears it), and
each page writes its own parameters only, so none carries over to another page.
"""

from __future__ import annotations

import streamlit as st

from cifar_core.runs.names import markdown_text
from cifar_core.share import links

WRITTEN = "address_written"  # the parameters this session last wrote into the address


def address_now() -> dict[str, list[str]]:
    """The address's query parameters, each with every value it was given."""
    return {key: st.query_params.get_all(key) for key in st.query_params}


def new_address() -> dict[str, list[str]]:
    """The address's parameters when they are new to this session (then they choose the view),
    else none: the ones the page wrote itself say only what is already chosen."""
    now = address_now()
    return {} if now == st.session_state.get(WRITTEN) else now


def notices_ui(*choices: links.Choice) -> None:
    """What the address named that the page could not show, a sentence each, as plain text."""
    for choice in choices:
        if choice.notice:
            st.warning(markdown_text(choice.notice), icon=":material/link_off:")


def keep_address(**values: object) -> None:
    """Write the view's choices into the address (only these: another page's are dropped)."""
    params = links.view_address(**values)
    written = {key: [value] for key, value in params.items()}
    if address_now() != written:
        st.query_params.from_dict(params)
    st.session_state[WRITTEN] = written
