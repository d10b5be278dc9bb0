# Generates Text.resx (English) and Text.ko.resx (Korean) from strings.tsv: key<TAB>English<TAB>Korean.
import html, os
here = os.path.dirname(os.path.abspath(__file__))
rows = [l.rstrip('\n').split('\t') for l in open(os.path.join(here, 'strings.tsv'), encoding='utf-8') if l.strip()]
head = '''<?xml version="1.0" encoding="utf-8"?>
<root>
  <resheader name="resmimetype"><value>text/microsoft-resx</value></resheader>
  <resheader name="version"><value>2.0</value></resheader>
  <resheader name="reader"><value>System.Resources.ResXResourceReader, System.Windows.Forms, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089</value></resheader>
  <resheader name="writer"><value>System.Resources.ResXResourceWriter, System.Windows.Forms, Version=4.0.0.0, Culture=neutral, PublicKeyToken=b77a5c561934e089</value></resheader>
'''
keys = set()
for r in rows:
    assert len(r) == 3, r
    assert r[0] not in keys, r[0]
    keys.add(r[0])
for idx, name in ((1, 'Text.resx'), (2, 'Text.ko.resx')):
    with open(os.path.join(here, name), 'w', encoding='utf-8') as f:
        f.write(head)
        for r in sorted(rows):
            f.write(f'  <data name="{r[0]}" xml:space="preserve"><value>{html.escape(r[idx], quote=False)}</value></data>\n')
        f.write('</root>\n')
