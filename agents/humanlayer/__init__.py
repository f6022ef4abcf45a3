"""A compatibility surface for the retired HumanLayer cloud API (humanlayer 0.7.x Python SDK).

A team on that SDK sets HUMANLAYER_API_BASE to <console>/humanlayer/v1 and HUMANLAYER_API_KEY to
an agent credential: function calls become approval requests, human contacts become questions
that a reviewer answers with the approval's note.
"""
